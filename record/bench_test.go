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
