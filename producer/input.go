package producer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Expand turns command-line inputs into paths for bottle.Walk. A path that
// exists is kept as is (file, directory or archive, even if its name contains
// glob characters); anything else is a glob pattern, expanded here so that
// quoting ('testdata/hour/B009*') works the same as shell expansion. A pattern
// that matches nothing, or a plain path that does not exist, is an error: a
// typo must not turn into a silent "0 records published".
func Expand(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no input: give bottle files, directories, globs or archives")
	}
	var out []string
	for _, a := range args {
		if _, err := os.Stat(a); err == nil {
			out = append(out, a)
			continue
		}
		if !strings.ContainsAny(a, "*?[") {
			return nil, fmt.Errorf("input %s: %w", a, os.ErrNotExist)
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("input pattern %q: %w", a, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("input pattern %q matches no file", a)
		}
		out = append(out, m...) // Glob returns lexical order
	}
	return out, nil
}

// inputSize sums the sizes of the regular files under paths; the progress
// line uses it for the ETA. Errors are ignored here: Walk reports them.
func inputSize(paths []string) int64 {
	var n int64
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r // WalkDir does not follow a symbolic link given as its root
		}
		filepath.WalkDir(p, func(_ string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}

// stream is one site's records of one session: the unit whose records must
// go out in time order (and that lands on one partition).
type stream struct {
	site    string
	session bottle.Session
}

// group is the files of one stream and one period (the minute of a Min file,
// the hour of an Hour or joined Min file, the day of a Day file). Merge turns
// it into records.
type group struct {
	stream
	start int64 // period start, epoch ms (from the file name)
	files []*bottle.File
	bytes int64 // sample bytes held
	late  bool  // an earlier-or-equal period of this stream was already emitted
}

// periodStart is the start of the period a file name covers, in epoch ms.
func periodStart(n bottle.Name) int64 {
	t := time.Date(n.Year, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n.DOY-1)
	if n.Hour >= 0 {
		t = t.Add(time.Duration(n.Hour) * time.Hour)
	}
	if n.Minute >= 0 {
		t = t.Add(time.Duration(n.Minute) * time.Minute)
	}
	return t.UnixMilli()
}

// sampleBytes is what a walked file holds in memory: its samples, or for a
// file left on disk only its header and name.
func sampleBytes(f *bottle.File) int64 {
	return int64(len(f.Ints))*4 + int64(len(f.Floats))*4 + 256 + int64(len(f.Name))
}

// lazyOver is the size above which a plain bottle file's samples are left on
// disk while it waits in the grouper and read in chunks when merged
// (bottle.WalkOptions.LazyOver). Real files of up to an hour (a 20-sps
// minute is 4.8 KB, a 1-sps hour 14 KB) are read whole, in one read each;
// a joined 20-sps hour (288 KB) or anything larger is read in chunks, so a
// file of any size costs a few chunk buffers.
//
// spillOver is the size above which an archive member is copied to an
// unlinked temporary file instead of memory (bottle.WalkOptions.SpillOver):
// far above any real bottle file (6.9 MB), so real archives never touch the
// disk, while a huge member costs no more memory than a huge plain file.
// Smaller members are read whole: the walker's buffer and the decoded
// samples of one member, up to 2 × 16 MiB, are part of MemoryConstant.
const (
	lazyOver  = 64 << 10
	spillOver = 16 << 20
)

// FileError is an input that could not be read or merged.
type FileError struct {
	Name string // path, or archive!member
	Err  error
}

func (e FileError) Error() string { return e.Err.Error() }

// grouper collects walked files into groups and emits them in order.
//
// Memory bound: up to limit bytes of samples are held (files left on disk,
// see lazyOver, count only their header), plus the group being filled (plus
// one archive member inside bottle.Walk, plus the groups handed to the
// workers, inFlightBytes, plus the pipeline's chunks and kgo's buffer; the
// total is in docs/performance.md, "Producer memory"). While everything
// fits, every stream goes out in strict time order whatever the order of the
// inputs. When the buffer fills, the oldest groups (never the one being
// filled) are emitted until half of it is free, so it keeps reordering a
// sliding window of the input. A group emitted after a later period of its
// stream is still published, but reported as out of order. Inputs walked in
// name order (one archive, a directory, a sorted glob) never hit this: bottle
// file names sort by site, then time. A 20-sps site-day is 27.6 MB of samples.
type grouper struct {
	limit   int64
	pending map[groupKey]*group
	bytes   int64
	current *group           // the group the last file went to
	emitted map[stream]int64 // newest emitted period per stream
	emit    func(*group) error
	late    []string // descriptions of out-of-order groups
}

type groupKey struct {
	stream
	start int64
}

func newGrouper(limit int64, emit func(*group) error) *grouper {
	return &grouper{limit: limit, pending: map[groupKey]*group{}, emitted: map[stream]int64{}, emit: emit}
}

func (g *grouper) add(f *bottle.File) error {
	s := stream{f.Info.Site, f.Info.Session}
	k := groupKey{s, periodStart(f.Info)}
	gr := g.pending[k]
	if gr == nil {
		gr = &group{stream: s, start: k.start}
		g.pending[k] = gr
	}
	gr.files = append(gr.files, f)
	b := sampleBytes(f)
	gr.bytes += b
	g.bytes += b
	g.current = gr
	if g.bytes-gr.bytes > g.limit {
		return g.flush(false)
	}
	return nil
}

// flush emits pending groups in (period start, site, session) order: time
// order within each stream, and streams interleaved so that all partitions
// are busy. Unless all is set, it stops once half the buffer is free (so the
// buffer keeps reordering a sliding window of the input), and the group
// being filled stays.
func (g *grouper) flush(all bool) error {
	var out []*group
	for _, gr := range g.pending {
		if all || gr != g.current {
			out = append(out, gr)
		}
	}
	slices.SortFunc(out, func(a, b *group) int {
		if a.start != b.start {
			return cmpInt(a.start, b.start)
		}
		if a.site != b.site {
			return strings.Compare(a.site, b.site)
		}
		return int(a.session) - int(b.session)
	})
	for _, gr := range out {
		if !all && g.bytes <= g.limit/2 {
			break
		}
		delete(g.pending, groupKey{gr.stream, gr.start})
		g.bytes -= gr.bytes
		if last, ok := g.emitted[gr.stream]; ok && gr.start <= last {
			gr.late = true
			g.late = append(g.late, fmt.Sprintf("%s %s %s (%s) published after %s",
				gr.site, gr.session, fmtMs(gr.start), gr.files[0].Name, fmtMs(last)))
		} else {
			g.emitted[gr.stream] = gr.start
		}
		if err := g.emit(gr); err != nil {
			return err
		}
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04") }

// readCounters are updated by the reader and read by the progress line.
type readCounters struct {
	files     atomic.Int64
	badFiles  atomic.Int64
	inputDone atomic.Int64 // bytes of inputs completely read (for the ETA)
	samples   atomic.Int64 // samples of the files read
	// Updated by the sender: samples of the groups handed to the sink and
	// their records (their ratio turns samples read into records expected),
	// and when the first group was handed over.
	samplesSent, recordsSent atomic.Int64
	firstSend                atomic.Int64 // unix nanoseconds
}

// read walks paths, groups files, and sends groups to out in order. Bad
// files are passed to bad; with strict the first one stops the walk (and
// nothing still buffered is sent). The walk stops early when ctx is done.
func read(ctx context.Context, paths []string, opt Options, c *readCounters,
	bad func(FileError), ignored func(error), emit func(*group) error) (late []string, err error) {
	g := newGrouper(opt.BufferBytes, emit)
	strict := opt.Strict
	bounds := newTimeBounds(time.Now())
	errStop := errors.New("stopped")
	var strictErr error
	archive := "" // the archive being walked
	finish := func(a string) {
		if fi, err := os.Stat(a); a != "" && err == nil {
			c.inputDone.Add(fi.Size())
		}
	}
	for _, p := range paths {
		// A file with a non-bottle name inside a directory or archive (a
		// README, a checksum list) is listed as ignored; named on the command
		// line it is an error like any unreadable input.
		container := isContainer(p)
		err := bottle.WalkWith([]string{p}, bottle.WalkOptions{LazyOver: lazyOver, SpillOver: spillOver}, func(f *bottle.File, err error) error {
			if ctx.Err() != nil {
				return errStop
			}
			if err == nil {
				err = bounds.check(f)
			}
			if err != nil && errors.Is(err, bottle.ErrBadName) && container {
				ignored(err)
				return nil
			}
			if err != nil {
				c.badFiles.Add(1)
				fe := FileError{Name: p, Err: err}
				bad(fe)
				if strict {
					strictErr = fmt.Errorf("--strict: stopping at the first bad input: %w", err)
					return errStop
				}
				return nil
			}
			c.files.Add(1)
			c.samples.Add(int64(f.Len()))
			// Progress: a plain file counts its bytes when read, an archive
			// when the walk leaves it.
			if i := strings.IndexByte(f.Name, '!'); i < 0 {
				c.inputDone.Add(int64(f.Header.HeaderSize) + f.Header.BodySize())
			} else if arch := f.Name[:i]; arch != archive {
				finish(archive)
				archive = arch
			}
			return g.add(f)
		})
		finish(archive)
		archive = ""
		switch {
		case errors.Is(err, errStop) && strictErr != nil:
			return g.late, strictErr
		case errors.Is(err, errStop):
			return g.late, ctx.Err()
		case err != nil:
			return g.late, err
		}
	}
	if err := g.flush(true); err != nil {
		return g.late, err
	}
	return g.late, nil
}

// isContainer reports whether p is a directory or an archive.
func isContainer(p string) bool {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return true
	}
	for _, ext := range []string{".tgz", ".tar.gz", ".tar"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}
