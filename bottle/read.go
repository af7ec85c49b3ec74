package bottle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReadFile reads and parses one bottle file from disk and classifies it by its
// base name. A name that is not a bottle name is an error (matching
// ErrBadName) before the file is read.
func ReadFile(path string) (*File, error) {
	info, err := ParseName(filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError already names the path
	}
	f, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	f.Info = info
	return f, nil
}

// Read parses a bottle file from a reader, like Parse (Info is left zero).
// It reads the whole stream; the buffer grows with the bytes that actually
// arrive, so a lying header cannot make it allocate more than the stream holds.
func Read(name string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return Parse(name, data)
}
