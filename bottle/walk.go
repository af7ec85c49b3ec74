package bottle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Walk visits bottle files in paths: plain files, directories (recursively,
// in lexical order), and .tgz/.tar.gz/.tar archives, including archives
// nested in archives as EarthScope ships them (a day tar of hourly _20.tar of
// per-minute .tgz). Archives are streamed: nothing is extracted to disk and
// at most one member is held in memory at a time.
//
// Each bottle file arrives parsed, with Info set from its base name and Name
// set to its path, or for archive members to "archive.tar!member.tgz!B0012200100CH0".
// Anything that cannot be read, or whose name is not a bottle name, arrives
// as (nil, err) with an error naming the path and member; the walk goes on
// unless fn returns an error, which Walk then returns unchanged. Errors for
// non-bottle names match ErrBadName, so a caller may choose to ignore them.
// A gzip stream is verified (CRC, length) only at its end, so a damaged
// trailer is reported after the members read before it.
//
// Symbolic links are followed, like find -L: a link named in paths or met
// inside a directory is read as what it points to (a file, an archive, or a
// directory walked recursively). A link to a directory that is already being
// walked above it (a loop) is reported as an error and not entered; a
// dangling link is reported as one.
func Walk(paths []string, fn func(f *File, err error) error) error {
	return WalkWith(paths, WalkOptions{}, fn)
}

// WalkOptions tune Walk.
type WalkOptions struct {
	// LazyOver > 0 leaves the samples of plain files (not archive members)
	// larger than LazyOver bytes on disk: they arrive as ReadHeader gives
	// them (OnDisk, read later with Samples), so that a huge file costs no
	// memory while it waits to be merged.
	LazyOver int64
	// SpillOver > 0 copies archive members larger than SpillOver bytes to
	// an unlinked temporary file (os.TempDir) instead of memory; they
	// arrive OnDisk like LazyOver files. Without it a member is held whole
	// (up to MaxFileSize).
	SpillOver int64
}

// WalkWith is Walk with options.
func WalkWith(paths []string, opt WalkOptions, fn func(f *File, err error) error) error {
	w := &walker{fn: fn, lazyOver: opt.LazyOver, spillOver: opt.SpillOver}
	for _, p := range paths {
		if err := w.path(p); err != nil {
			var s stop
			if errors.As(err, &s) {
				return s.err
			}
			return err
		}
	}
	return nil
}

// walker carries the callback and a member buffer reused across members, so
// a walk over thousands of members does not allocate one buffer per member.
type walker struct {
	fn        func(*File, error) error
	buf       bytes.Buffer
	maxMember int64 // 0 means MaxFileSize; the fuzz test lowers it
	// gz holds one gzip.Reader per archive nesting depth, reset for each
	// stream: a Min day has 1440 per-minute .tgz and a fresh reader costs
	// ~45 KB of decompressor state each.
	gz        []*gzip.Reader
	depth     int
	lazyOver  int64
	spillOver int64
}

// stop wraps fn's error while it travels through filepath.WalkDir, which
// would otherwise interpret fs.SkipDir / fs.SkipAll itself.
type stop struct{ err error }

func (s stop) Error() string { return s.err.Error() }

// report hands one result to fn. Its non-nil return means "stop walking";
// every internal method returns only such errors, never read errors.
func (w *walker) report(f *File, err error) error {
	if e := w.fn(f, err); e != nil {
		return stop{e}
	}
	return nil
}

func (w *walker) path(p string) error {
	st, err := os.Stat(p) // follows a symbolic link given as input
	if err != nil {
		if _, serr := statRegular(p); serr != nil {
			err = serr // names a dangling link as such
		}
		return w.report(nil, err)
	}
	if !st.IsDir() {
		return w.file(p)
	}
	return w.dir(p, []os.FileInfo{st})
}

// dir walks directory p in lexical order. above holds p and the directories
// above it in this walk: a symbolic link back to one of them would loop.
func (w *walker) dir(p string, above []os.FileInfo) error {
	entries, err := os.ReadDir(p)
	if err != nil {
		// ReadDir returns what it read before the error; report, then go on
		// with those.
		if e := w.report(nil, err); e != nil {
			return e
		}
	}
	for _, e := range entries {
		q := filepath.Join(p, e.Name())
		isDir := e.IsDir()
		var st os.FileInfo
		if e.Type()&os.ModeSymlink != 0 {
			// A dangling link falls through to w.file, whose statRegular
			// names it.
			if s, err := os.Stat(q); err == nil && s.IsDir() {
				isDir, st = true, s
			}
		} else if isDir {
			if st, err = os.Stat(q); err != nil {
				if e := w.report(nil, err); e != nil {
					return e
				}
				continue
			}
		}
		if !isDir {
			if err := w.file(q); err != nil {
				return err
			}
			continue
		}
		if slices.ContainsFunc(above, func(a os.FileInfo) bool { return os.SameFile(a, st) }) {
			target, _ := filepath.EvalSymlinks(q)
			if e := w.report(nil, fmt.Errorf("%s: symbolic link loop: leads back to %s, a directory this walk is already in; not entered", q, target)); e != nil {
				return e
			}
			continue
		}
		if err := w.dir(q, append(above[:len(above):len(above)], st)); err != nil {
			return err
		}
	}
	return nil
}

// archiveKind says how a name is read: as a gzipped tar, a tar, or a bottle.
type archiveKind int

const (
	notArchive archiveKind = iota
	gzipTar
	plainTar
)

func kindOf(name string) archiveKind {
	switch {
	case strings.HasSuffix(name, ".tgz"), strings.HasSuffix(name, ".tar.gz"):
		return gzipTar
	case strings.HasSuffix(name, ".tar"):
		return plainTar
	}
	return notArchive
}

func (w *walker) file(p string) error {
	k := kindOf(filepath.Base(p))
	if k == notArchive {
		f, err := readFile(p, w.lazyOver)
		return w.report(f, err)
	}
	if _, err := statRegular(p); err != nil {
		return w.report(nil, err)
	}
	fh, err := os.Open(p)
	if err != nil {
		return w.report(nil, err)
	}
	defer fh.Close()
	return w.archive(p, k, fh)
}

// archive reads a (possibly gzipped) tar stream named name.
func (w *walker) archive(name string, k archiveKind, r io.Reader) error {
	if k == plainTar {
		w.depth++
		defer func() { w.depth-- }()
		_, err := w.tar(name, r)
		return err
	}
	gz, err := w.gzipReader(r)
	if err != nil {
		return w.report(nil, fmt.Errorf("%s: not a gzip stream: %w", name, err))
	}
	w.depth++
	defer func() { w.depth-- }()
	clean, err := w.tar(name, gz)
	if err != nil || !clean {
		return err // the damage was reported already
	}
	// The tar reader stops at the end-of-archive blocks; read the rest of the
	// gzip stream so that its CRC and length are checked too.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return w.report(nil, fmt.Errorf("%s: gzip stream after the tar: %w", name, err))
	}
	return nil
}

// gzipReader returns the reader of the current depth reset to r.
func (w *walker) gzipReader(r io.Reader) (*gzip.Reader, error) {
	for len(w.gz) <= w.depth {
		w.gz = append(w.gz, nil)
	}
	if z := w.gz[w.depth]; z != nil {
		return z, z.Reset(r)
	}
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	w.gz[w.depth] = z
	return z, nil
}

// tar visits the members of one tar stream. A damaged member is reported and
// skipped; a damaged tar stream itself ends this archive (nothing after the
// damage can be located) but not the walk. clean says the stream reached its
// end-of-archive marker.
func (w *walker) tar(name string, r io.Reader) (clean bool, err error) {
	tail := &tailReader{r: r}
	tr := tar.NewReader(tail)
	members := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			switch {
			case tail.n == 0:
				return false, w.report(nil, fmt.Errorf("%s: empty archive (0 bytes)", name))
			case !tail.endMarker():
				return false, w.report(nil, fmt.Errorf("%s: truncated tar: stream ends after %d members and %d bytes without the end-of-archive blocks", name, members, tail.n))
			case members == 0:
				return true, w.report(nil, fmt.Errorf("%s: empty archive (no members)", name))
			}
			return true, nil
		}
		if err != nil {
			return false, w.report(nil, fmt.Errorf("%s: reading tar after %d members: %w", name, members, err))
		}
		members++
		mname := strings.TrimPrefix(hdr.Name, "./")
		member := name + "!" + mname
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			// a directory, or pax metadata that archive/tar hands back as a
			// header (git archive writes one): neither is a member to read
			continue
		case tar.TypeReg, tar.TypeRegA:
		default:
			if err := w.report(nil, fmt.Errorf("%s: not a regular file (tar type %q)", member, hdr.Typeflag)); err != nil {
				return false, err
			}
			continue
		}
		var err2 error
		if k := kindOf(path.Base(mname)); k != notArchive {
			err2 = w.archive(member, k, tr)
		} else {
			err2 = w.member(member, path.Base(mname), hdr.Size, tr)
		}
		if err2 != nil {
			return false, err2
		}
	}
}

// member reads one bottle file of size bytes from an archive.
func (w *walker) member(name, base string, size int64, r io.Reader) error {
	info, err := ParseName(base)
	if err != nil {
		return w.report(nil, fmt.Errorf("%s: %w", name, err))
	}
	limit := w.maxMember
	if limit == 0 {
		limit = MaxFileSize
	}
	if size > limit {
		return w.report(nil, fmt.Errorf("%s: member of %d bytes is beyond the %d-byte limit for one bottle file", name, size, limit))
	}
	if w.spillOver > 0 && size > w.spillOver {
		f, err := spill(name, info, size, r)
		return w.report(f, err)
	}
	// The buffer grows with the bytes that really arrive (bytes.Buffer's
	// doubling), so a tar header claiming a huge size allocates nothing extra.
	w.buf.Reset()
	n, err := io.CopyN(&w.buf, r, size)
	if err != nil {
		return w.report(nil, fmt.Errorf("%s: member truncated after %d of %d bytes: %w", name, n, size, err))
	}
	f, err := Parse(name, w.buf.Bytes())
	if err != nil {
		return w.report(nil, err)
	}
	f.Info = info
	return w.report(f, nil)
}

// tailReader remembers how many bytes were read and the last 1024 of them.
// archive/tar reports a stream cut at a block boundary (or inside a header or
// padding) as a clean io.EOF; a complete tar ends with two zero blocks, which
// is what endMarker checks.
type tailReader struct {
	r    io.Reader
	n    int64
	tail [1024]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.tail) {
		copy(t.tail[:], p[n-len(t.tail):n])
	} else if n > 0 {
		copy(t.tail[:], t.tail[n:])
		copy(t.tail[len(t.tail)-n:], p[:n])
	}
	t.n += int64(n)
	return n, err
}

func (t *tailReader) endMarker() bool {
	if t.n < int64(len(t.tail)) || t.n%512 != 0 {
		return false
	}
	for _, b := range t.tail {
		if b != 0 {
			return false
		}
	}
	return true
}
