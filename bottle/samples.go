package bottle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SampleChunk is how many samples Samples reads from disk at a time: 8192
// samples are 32 KiB of int32, large enough that the read syscalls cost
// nothing next to the work per sample, small enough that a group of forty
// Day channels holds ~2.5 MiB of buffers (raw bytes plus decoded samples).
const SampleChunk = 8192

// diskSource is where the samples of a File left on disk are: a path, or
// for an archive member spilled to disk (WalkOptions.SpillOver) an open,
// already unlinked temporary file, which the kernel deletes once the last
// handle is gone (the *os.File's finalizer closes it when the File is
// garbage), so no temporary file outlives the process, even after kill -9.
type diskSource struct {
	path string
	size int64    // file size when the header was read; checked again on open
	tmp  *os.File // spilled archive member, read with ReadAt
}

// OnDisk reports whether f's samples were left on disk (ReadHeader): Ints and
// Floats are then nil and Samples reads them.
func (f *File) OnDisk() bool { return f.disk != nil }

// MissingInt reports whether an int16/int32 sample holds the fill value.
func (h *Header) MissingInt(v int32) bool { return v == h.Missing }

// MissingFloat reports whether a float32 sample holds the fill value,
// compared as float32(missing), i.e. 999999.0.
func (h *Header) MissingFloat(v float32) bool { return v == float32(h.Missing) }

// ReadHeader is ReadFile without the samples: it classifies the file by its
// name, reads and validates the header, checks that the file's size is
// exactly header_size + num_pts samples (the same errors as Parse), and
// returns a File whose samples stay on disk (OnDisk), to be read in chunks
// with Samples. Memory does not depend on the file's size, so there is no
// MaxFileSize limit here.
func ReadHeader(path string) (*File, error) {
	info, err := ParseName(filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := statRegular(path)
	if err != nil {
		return nil, err
	}
	return readHeader(path, info, st.Size())
}

// readHeader reads the header of a regular file of size bytes.
func readHeader(path string, info Name, size int64) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var buf [MinHeaderSize]byte
	n, err := io.ReadFull(fh, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h, err := ParseHeader(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkSize(path, &h, size); err != nil {
		return nil, err
	}
	return &File{Name: path, Info: info, Header: h, disk: &diskSource{path: path, size: size}}, nil
}

// Samples reads a file's samples in order, a chunk at a time: views of Ints
// or Floats for a file in memory, SampleChunk samples decoded into reused
// buffers for a file on disk. Close releases the open file.
type Samples struct {
	f      *File
	r      io.Reader // the samples of a file on disk, from the first
	fh     *os.File  // what Close closes (nil for a spilled member)
	next   int       // index of the next sample to hand out
	raw    []byte
	ints   []int32
	floats []float32
}

// Samples opens a reader over f's samples. For a file on disk the file is
// opened now and must still have the size it had when its header was read:
// a file that changed in between is an error, not a silent mix of two
// versions.
func (f *File) Samples() (*Samples, error) {
	s := &Samples{f: f}
	if f.disk == nil {
		return s, nil
	}
	if t := f.disk.tmp; t != nil {
		s.r = io.NewSectionReader(t, int64(f.Header.HeaderSize), f.Header.BodySize())
	} else {
		fh, err := os.Open(f.disk.path)
		if err != nil {
			return nil, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		if st.Size() != f.disk.size {
			fh.Close()
			return nil, fmt.Errorf("%s: changed while being read: %d bytes when its header was read, %d now", f.Name, f.disk.size, st.Size())
		}
		if _, err := fh.Seek(int64(f.Header.HeaderSize), io.SeekStart); err != nil {
			fh.Close()
			return nil, fmt.Errorf("%s: seek to the samples at offset %d: %w", f.Name, f.Header.HeaderSize, err)
		}
		s.r, s.fh = fh, fh
	}
	n := min(SampleChunk, f.Len())
	s.raw = make([]byte, n*f.Header.DataType.Size())
	if f.Header.DataType == Float32 {
		s.floats = make([]float32, n)
	} else {
		s.ints = make([]int32, n)
	}
	return s, nil
}

// spill copies an archive member of size bytes from r to an unlinked
// temporary file and reads its header there (see diskSource).
func spill(name string, info Name, size int64, r io.Reader) (*File, error) {
	t, err := os.CreateTemp("", "gtsm-member-*")
	if err != nil {
		return nil, fmt.Errorf("%s: spill to a temporary file: %w", name, err)
	}
	// Unlinked at once: the open handle keeps the data until it is closed.
	os.Remove(t.Name())
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	if n, err := io.CopyN(t, r, size); err != nil {
		return nil, fmt.Errorf("%s: member truncated after %d of %d bytes: %w", name, n, size, err)
	}
	var buf [MinHeaderSize]byte
	n, err := t.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h, err := ParseHeader(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := checkSize(name, &h, size); err != nil {
		return nil, err
	}
	ok = true
	return &File{Name: name, Info: info, Header: h, disk: &diskSource{path: name, size: size, tmp: t}}, nil
}

// Next returns the next samples, starting at sample index first: ints for
// int16/int32 files, floats for float32 files (the other is nil). At the end
// it returns io.EOF. The slices are valid until the next call.
func (s *Samples) Next() (first int, ints []int32, floats []float32, err error) {
	f := s.f
	total := f.Len()
	first = s.next
	if first >= total {
		return first, nil, nil, io.EOF
	}
	if s.r == nil {
		if f.disk != nil {
			return first, nil, nil, fmt.Errorf("%s: samples read after Close", f.Name)
		}
		// In memory: hand out views, no copy.
		end := min(total, first+4*SampleChunk)
		s.next = end
		if f.Header.DataType == Float32 {
			return first, nil, f.Floats[first:end], nil
		}
		return first, f.Ints[first:end], nil, nil
	}
	n := min(total-first, SampleChunk)
	size := f.Header.DataType.Size()
	raw := s.raw[:n*size]
	if _, err := io.ReadFull(s.r, raw); err != nil {
		off := int64(f.Header.HeaderSize) + int64(first)*int64(size)
		return first, nil, nil, fmt.Errorf("%s: reading samples %d..%d at offset %d: %w", f.Name, first, first+n-1, off, err)
	}
	s.next = first + n
	if f.Header.DataType == Float32 {
		decodeInto(&f.Header, raw, nil, s.floats[:n], hostLittleEndian)
		return first, nil, s.floats[:n], nil
	}
	decodeInto(&f.Header, raw, s.ints[:n], nil, hostLittleEndian)
	return first, s.ints[:n], nil, nil
}

// Close closes the file of a reader over a file on disk.
func (s *Samples) Close() error {
	s.r = nil
	if s.fh == nil {
		return nil
	}
	err := s.fh.Close()
	s.fh = nil
	return err
}
