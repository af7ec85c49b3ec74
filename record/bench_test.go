package record

import (
	"fmt"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
)

// minuteFiles is one hour of Min files: 60 minutes × CH0..CH3, 1200
// samples each, like the real B202 set.
func minuteFiles(b *testing.B) []*bottle.File {
	const t0 = int64(1547683200000)
	var files []*bottle.File
	for m := range 60 {
		for c := range 4 {
			ints := make([]int32, 1200)
			for i := range ints {
				ints[i] = int32(45000000 + c*1000000 + (i*7)%50)
			}
			files = append(files, memFile(b, fmt.Sprintf("B2021901700%02dCH%d_20", m, c), t0+int64(m)*60000, 50, ints, nil))
		}
	}
	return files
}

func BenchmarkMerge(b *testing.B) {
	files := minuteFiles(b)
	b.Run("MinHour", func(b *testing.B) {
		var n int
		for b.Loop() {
			recs, err := Merge(files)
			if err != nil {
				b.Fatal(err)
			}
			n += len(recs)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
}

func BenchmarkFormatTimestamp(b *testing.B) {
	ms := int64(1547683200050)
	for b.Loop() {
		_ = FormatTimestamp(ms)
		ms += 50
	}
}

// dayRecord is a Day record at hh:30 with strain, ancillary, RTSetting and
// Cal fields set (25 of the 56 ints), values as in the real B203 files.
func dayRecord() Record {
	var r Record
	r.SetSite("B203")
	r.SetTime(1556152200000)
	r.Session = bottle.Day
	for i := range 25 {
		r.SetInt(FirstInt+[]int{0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 26, 29, 32, 34, 35, 38, 39, 41, 42}[i], int32(51234567-i*2345678))
	}
	return r
}

func BenchmarkAppendAvro(b *testing.B) {
	r := dayRecord()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = AppendAvro(buf[:0], &r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeAvro(b *testing.B) {
	r := dayRecord()
	buf := AppendAvro(nil, &r)
	var got Record
	for b.Loop() {
		if _, err := DecodeAvro(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
