package producer

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
)

// Summary is what a run delivered. Records and Bytes count only records the
// broker acknowledged (in a dry run: lines written).
type Summary struct {
	Topic      string
	DryRun     bool
	Partitions int32 // of the topic (0 in a dry run)
	Created    bool  // the topic was created by this run

	Streams       []StreamSummary // sorted by site, session
	Files         int64           // bottle files read
	Records       int64           // acknowledged
	Bytes         int64           // key + value bytes acknowledged
	RecordsFailed int64           // the broker or client reported a failure
	Unacked       int64           // sent but neither acknowledged nor failed (abandoned after a cancel)
	Duration      time.Duration
	Failed        []FileError // inputs that could not be read or merged
	Late          []string    // groups published out of time order (see grouper)
	Ignored       []string    // non-bottle names inside directories and archives
	Interrupted   bool
}

// StreamSummary is one site and session.
type StreamSummary struct {
	Site                   string
	Session                bottle.Session
	Partition              int32
	Records, Failed, Bytes int64
	Unacked                int64
	First, Last            int64 // sample times, epoch ms
}

// Rate is acknowledged records per second.
func (s *Summary) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Records) / s.Duration.Seconds()
}

func (s *Summary) sortStreams() {
	slices.SortFunc(s.Streams, func(a, b StreamSummary) int {
		if c := strings.Compare(a.Site, b.Site); c != 0 {
			return c
		}
		return int(a.Session) - int(b.Session)
	})
}

// Write prints the human summary.
func (s *Summary) Write(w io.Writer) {
	verb := "delivered (acknowledged) to topic " + s.Topic
	if s.DryRun {
		verb = "written as JSON lines (dry run, nothing sent)"
	}
	if s.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the counts below are exactly what was acknowledged before stopping")
	}
	if s.Partitions > 0 {
		created := ""
		if s.Created {
			created = ", created by this run"
		}
		fmt.Fprintf(w, "topic %s: %d partitions%s\n", s.Topic, s.Partitions, created)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "site\tsession\tpartition\trecords\tbytes\tfirst\tlast\t")
	for _, st := range s.Streams {
		part := fmt.Sprint(st.Partition)
		if st.Partition < 0 {
			part = "-"
		}
		first, last := "-", "-"
		if st.Records > 0 {
			first, last = fmtSec(st.First), fmtSec(st.Last)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", st.Site, st.Session, part, st.Records, st.Bytes, first, last)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d records %s, %.1f MB, %d files, in %s (%.0f records/s)\n",
		s.Records, verb, float64(s.Bytes)/1e6, s.Files, s.Duration.Round(time.Millisecond), s.Rate())
	if s.RecordsFailed > 0 || s.Unacked > 0 {
		fmt.Fprintf(w, "NOT DELIVERED: %d records failed, %d were never acknowledged\n", s.RecordsFailed, s.Unacked)
	}
	if len(s.Failed) > 0 {
		fmt.Fprintf(w, "unreadable input(s) skipped: %d\n", len(s.Failed))
		for _, f := range s.Failed {
			fmt.Fprintf(w, "  %s\n", f.Err)
		}
	}
	if len(s.Ignored) > 0 {
		fmt.Fprintf(w, "%d files inside directories/archives are not bottle files by name and were ignored:\n", len(s.Ignored))
		for i, l := range s.Ignored {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more\n", len(s.Ignored)-10)
				break
			}
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(s.Late) > 0 {
		fmt.Fprintf(w, "%d groups were published out of time order (inputs not in time order and larger than the buffer; raise --buffer-mb or sort the inputs):\n", len(s.Late))
		for _, l := range s.Late {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func fmtSec(ms int64) string {
	t := time.UnixMilli(ms).UTC()
	if ms%1000 != 0 {
		return t.Format("2006-01-02T15:04:05.000")
	}
	return t.Format("2006-01-02T15:04:05")
}

// startProgress calls opt.Progress periodically until the returned stop
// function is called (which sends one last snapshot).
func startProgress(opt Options, paths []string, rc *readCounters, acked func() (int64, int64), start time.Time) (stop func()) {
	if opt.Progress == nil {
		return func() {}
	}
	every := opt.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	var total atomic.Int64
	go func() { total.Store(inputSize(paths)) }()
	snap := func() Progress {
		r, b := acked()
		p := Progress{Files: rc.files.Load(), BadFiles: rc.badFiles.Load(), Records: r, Bytes: b,
			Elapsed: time.Since(start), InputDone: rc.inputDone.Load(), Input: total.Load(), ETA: -1}
		p.ETA = eta(r, p.InputDone, p.Input, rc.samples.Load(), rc.samplesSent.Load(), rc.recordsSent.Load(), rc.firstSend.Load())
		return p
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				opt.Progress(snap())
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		opt.Progress(snap())
	}
}

// eta estimates the time left from the records acknowledged so far.
func eta(acked, inputDone, input, samples, samplesSent, recordsSent, firstSend int64) time.Duration {
	if acked == 0 || inputDone == 0 || input == 0 || samplesSent == 0 || firstSend == 0 {
		return -1
	}
	total := float64(samples) * float64(max(input, inputDone)) / float64(inputDone) *
		float64(recordsSent) / float64(samplesSent)
	rate := float64(acked) / time.Since(time.Unix(0, firstSend)).Seconds()
	left := (total - float64(acked)) / rate
	if left < 0 {
		left = 0
	}
	return time.Duration(left * float64(time.Second))
}

// Line renders a progress snapshot on one line (no newline).
func (p Progress) Line() string {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Records) / p.Elapsed.Seconds()
	}
	eta := "ETA ?"
	if p.ETA >= 0 {
		eta = "ETA " + p.ETA.Round(time.Second).String()
	}
	bad := ""
	if p.BadFiles > 0 {
		bad = fmt.Sprintf(" (%d bad)", p.BadFiles)
	}
	mb := float64(p.Bytes) / 1e6
	return fmt.Sprintf("%d files%s, %d records, %.1f MB, %.0f rec/s, %s, %s", p.Files, bad, p.Records, mb, rate,
		p.Elapsed.Round(time.Second), eta)
}
