package bottle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// MaxFileSize is the largest bottle file ReadFile and Walk will read. The
// largest real bottle file, a 20-sps day of one channel, is 6.9 MB; the limit
// stops a sparse or lying tar member (a few bytes on disk that expand to
// gigabytes of zeros) or a wrong path from exhausting memory.
const MaxFileSize = 1 << 30

// ReadFile reads and parses one bottle file from disk and classifies it by its
// base name. A name that is not a bottle name is an error (matching
// ErrBadName) before the file is read.
func ReadFile(path string) (*File, error) { return readFile(path, 0) }

// readFile is ReadFile, or ReadHeader for a file larger than lazyOver > 0.
func readFile(path string, lazyOver int64) (*File, error) {
	info, err := ParseName(filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := statRegular(path)
	if err != nil {
		return nil, err
	}
	if lazyOver > 0 && st.Size() > lazyOver {
		return readHeader(path, info, st.Size())
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes is beyond the %d-byte limit for one bottle file", path, st.Size(), MaxFileSize)
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

// statRegular stats path and refuses anything but a regular file (symlinks
// followed): reading a named pipe with no writer blocks forever and a device
// may never end, so they are errors, not inputs. A dangling symlink is named
// as such rather than as a bare "no such file".
func statRegular(path string) (os.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		if lst, lerr := os.Lstat(path); lerr == nil && lst.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(path)
			return nil, fmt.Errorf("%s: dangling symbolic link to %s", path, target)
		}
		return nil, err
	}
	if !st.Mode().IsRegular() {
		kind := "special file"
		switch t := st.Mode().Type(); {
		case t&os.ModeNamedPipe != 0:
			kind = "named pipe (FIFO)"
		case t&os.ModeSocket != 0:
			kind = "socket"
		case t&os.ModeDevice != 0:
			kind = "device"
		}
		return nil, fmt.Errorf("%s: not a regular file but a %s: not read", path, kind)
	}
	return st, nil
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
