package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/earthscope/gtsm-stream/bottle"
)

const bottleHelp = `Reads bottle files, directories (recursively) and EarthScope archives
(.tgz, .tar.gz, .tar, including day tars of hourly _20.tar of per-minute .tgz)
and prints, per bottle file, its header, what its name says (site, session,
channel, gtsm_etl field) and its first samples with their UTC times. Missing
samples (the header's fill value) are shown as "missing" (null in JSON).

Examples:
  gtsm bottle inspect testdata/hour/B0092118200CH0
  gtsm bottle inspect -n 3 testdata/day
  gtsm bottle inspect --json -n 0 B001.2022001_20.tar | jq .num_pts
  gtsm bottle inspect -n -1 --json testdata/min/B009211820000CH0_20   # every sample

Exit status 1 when any input could not be read (each error names the file and
archive member); the other inputs are still printed.`

// runBottle is "gtsm bottle <subcommand>"; inspect is the only one.
func runBottleInspect(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "bottle inspect", "bottle inspect [--json] [-n N] FILE|DIR|ARCHIVE...", bottleHelp)
	n := fs.IntP("samples", "n", 5, "number of samples to print per file (-1: all)")
	asJSON := fs.Bool("json", false, "print one JSON object per file (one per line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no FILE, DIR or ARCHIVE given"}
	}
	files, failed := 0, 0
	err := bottle.Walk(fs.Args(), func(f *bottle.File, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failed++
			if *asJSON {
				return writeJSONLine(env.stdout, map[string]string{"error": err.Error()})
			}
			fmt.Fprintf(env.stderr, "gtsm bottle inspect: %v\n", err)
			return nil
		}
		files++
		if *asJSON {
			return writeJSONLine(env.stdout, describe(f, *n))
		}
		return printFile(env.stdout, f, *n)
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d inputs could not be read", failed, files+failed)
	}
	return nil
}

// fileInfo is the --json shape of one bottle file.
type fileInfo struct {
	Name       string       `json:"name"`
	Site       string       `json:"site"`
	Session    string       `json:"session"`
	Year       int          `json:"year"`
	DOY        int          `json:"doy"`
	Hour       *int         `json:"hour"`
	Minute     *int         `json:"minute"`
	Joined     bool         `json:"joined,omitempty"`
	Channel    string       `json:"channel"`
	Field      string       `json:"field"`
	ByteOrder  string       `json:"byte_order"`
	HeaderSize int32        `json:"header_size"`
	Unused     int16        `json:"unused"`
	USGSLock   int32        `json:"usgs_lock"`
	DataType   string       `json:"data_type"`
	NumPts     int32        `json:"num_pts"`
	Fill       int32        `json:"fill"`
	ID         int32        `json:"id"`
	Start      string       `json:"start"`
	StartMs    int64        `json:"start_ms"`
	IntervalMs int64        `json:"interval_ms"`
	End        string       `json:"end,omitempty"` // time of the last sample
	Missing    int          `json:"missing"`       // number of fill samples
	Samples    []sampleInfo `json:"samples"`
}

type sampleInfo struct {
	I      int      `json:"i"`
	Time   string   `json:"time"`
	TimeMs int64    `json:"time_ms"`
	Value  *float64 `json:"value"` // null when missing; exact for int32 and float32
}

func describe(f *bottle.File, n int) fileInfo {
	h := f.Header
	fi := fileInfo{
		Name: f.Name, Site: f.Info.Site, Session: f.Info.Session.String(), Year: f.Info.Year, DOY: f.Info.DOY,
		Joined: f.Info.Joined, Channel: f.Info.Channel, Field: f.Info.Field,
		ByteOrder: byteOrder(h), HeaderSize: h.HeaderSize, Unused: h.Unused, USGSLock: h.USGSLock,
		DataType: h.DataType.String(), NumPts: h.NumPts, Fill: h.Missing, ID: h.ID,
		Start: utc(h.StartMs()), StartMs: h.StartMs(), IntervalMs: h.IntervalMs(),
		Samples: []sampleInfo{},
	}
	if f.Info.Hour >= 0 {
		fi.Hour = &f.Info.Hour
	}
	if f.Info.Minute >= 0 {
		fi.Minute = &f.Info.Minute
	}
	if f.Len() > 0 {
		fi.End = utc(h.TimeMs(f.Len() - 1))
	}
	for i := 0; i < f.Len(); i++ {
		if f.IsMissing(i) {
			fi.Missing++
		}
	}
	for i := 0; i < f.Len() && (n < 0 || i < n); i++ {
		s := sampleInfo{I: i, Time: utc(h.TimeMs(i)), TimeMs: h.TimeMs(i)}
		if !f.IsMissing(i) {
			v := sample(f, i)
			s.Value = &v
		}
		fi.Samples = append(fi.Samples, s)
	}
	return fi
}

func printFile(w io.Writer, f *bottle.File, n int) error {
	fi := describe(f, n)
	where := ""
	if fi.Hour != nil {
		where = fmt.Sprintf("  hour %02d", *fi.Hour)
	}
	if fi.Minute != nil {
		where += fmt.Sprintf("  minute %02d", *fi.Minute)
	}
	if fi.Joined {
		where += "  (60 joined minutes)"
	}
	fmt.Fprintf(w, "%s\n", fi.Name)
	fmt.Fprintf(w, "  site %s  session %s  %d-%03d%s  channel %s  field %s\n", fi.Site, fi.Session, fi.Year, fi.DOY, where, fi.Channel, fi.Field)
	fmt.Fprintf(w, "  %s  header_size %d  unused %d  usgs_lock %d  id %d\n", fi.ByteOrder, fi.HeaderSize, fi.Unused, fi.USGSLock, fi.ID)
	fmt.Fprintf(w, "  %s  num_pts %d  fill %d  missing %d\n", fi.DataType, fi.NumPts, fi.Fill, fi.Missing)
	fmt.Fprintf(w, "  start %s (%d ms)  interval %d ms  last %s\n", fi.Start, fi.StartMs, fi.IntervalMs, fi.End)
	for _, s := range fi.Samples {
		v := "missing"
		if s.Value != nil {
			v = formatSample(f, s.I)
		}
		fmt.Fprintf(w, "  %7d  %s  %s\n", s.I, s.Time, v)
	}
	_, err := fmt.Fprintln(w)
	return err
}

func sample(f *bottle.File, i int) float64 {
	if f.Header.DataType == bottle.Float32 {
		return float64(f.Floats[i])
	}
	return float64(f.Ints[i])
}

// formatSample prints a float32 with the fewest digits that read back to the
// same float32 (13.52, not 13.520000457763672).
func formatSample(f *bottle.File, i int) string {
	if f.Header.DataType == bottle.Float32 {
		return strconv.FormatFloat(float64(f.Floats[i]), 'g', -1, 32)
	}
	return strconv.Itoa(int(f.Ints[i]))
}

func byteOrder(h bottle.Header) string {
	if h.BigEndian {
		return "big-endian"
	}
	return "little-endian"
}

func utc(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
