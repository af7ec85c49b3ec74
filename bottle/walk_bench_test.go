package bottle

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkWalkMinDayArchive streams an EarthScope-shaped Min day archive
// (B001.2022001_20.tar: 24 hourly _20.tar of 60 per-minute .tgz of 4 CH
// files, 5760 bottle files, 27.9 MB of bottle bytes) through the walker.
// SetBytes counts bottle bytes, so MB/s compares with the Parse benchmarks.
func BenchmarkWalkMinDayArchive(b *testing.B) {
	const day = 1640995200.0
	var hours []entry
	var bottleBytes int64
	x := uint64(88172645463325252)
	for h := 0; h < 24; h++ {
		var minutes []entry
		for m := 0; m < 60; m++ {
			var chans []entry
			for c := 0; c < 4; c++ {
				f := &File{Header: Header{Start: day + float64(h*3600+m*60), Interval: 0.05, DataType: Int32, Missing: 999999}}
				f.Ints = make([]int32, 1200)
				for i := range f.Ints {
					// a slow drift plus ~3 counts of xorshift noise, so the
					// archive compresses about as well as real ones do
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					f.Ints[i] = 48_000_000 + int32(c*1_000_000+h*60+m+int(x%7))
				}
				body, err := Encode(f)
				if err != nil {
					b.Fatal(err)
				}
				bottleBytes += int64(len(body))
				chans = append(chans, entry{name: fmt.Sprintf("B00122001%02d%02dCH%d_20", h, m, c), body: body})
			}
			minutes = append(minutes, entry{name: fmt.Sprintf("B00122001%02d%02d_20.tgz", h, m), body: gzipOf(b, tarOf(b, chans...))})
		}
		hours = append(hours, entry{name: fmt.Sprintf("B00122001%02d_20.tar", h), body: tarOf(b, minutes...)})
	}
	archive := tarOf(b, hours...)
	b.SetBytes(bottleBytes)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		w := &walker{fn: func(f *File, err error) error {
			if err != nil {
				return err
			}
			n++
			return nil
		}}
		if err := w.archive("B001.2022001_20.tar", plainTar, bytes.NewReader(archive)); err != nil {
			b.Fatal(err)
		}
		if n != 24*60*4 {
			b.Fatalf("%d files", n)
		}
	}
	b.ReportMetric(float64(len(archive))/1e6, "archive-MB")
}
