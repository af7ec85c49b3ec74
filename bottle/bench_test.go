package bottle

import (
	"encoding/binary"
	"testing"
	"time"
)

// minDay is a 20-sps day of one channel: 86400 s x 20 samples.
const minDay = 1728000

// dayFiles encodes four channels of a 20-sps day with the writer, in memory.
func dayFiles(b *testing.B, bigEndian bool) ([][]byte, int64) {
	b.Helper()
	var files [][]byte
	var total int64
	for c := 0; c < 4; c++ {
		f := &File{Header: Header{BigEndian: bigEndian, Start: 1625097600, Interval: 0.05, DataType: Int32, Missing: 999999}}
		f.Ints = make([]int32, minDay)
		for i := range f.Ints {
			f.Ints[i] = 48_000_000 + int32(c*1_000_000) + int32(i%4096)
		}
		data, err := Encode(f)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
		total += int64(len(data))
	}
	return files, total
}

func benchParse(b *testing.B, bigEndian bool) {
	files, total := dayFiles(b, bigEndian)
	b.SetBytes(total)
	b.ReportAllocs()
	var sink int32
	for b.Loop() {
		for _, d := range files {
			f, err := Parse("bench", d)
			if err != nil {
				b.Fatal(err)
			}
			sink += f.Ints[len(f.Ints)-1]
		}
	}
	if sink == 0 {
		b.Fatal("nothing decoded")
	}
	b.ReportMetric(float64(4*minDay)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkParseMinDay parses four little-endian 20-sps day files
// (4 x 1,728,000 int32 samples, 27.6 MB), as real files are.
func BenchmarkParseMinDay(b *testing.B) { benchParse(b, false) }

// BenchmarkParseMinDayBigEndian is the same day written big-endian.
func BenchmarkParseMinDayBigEndian(b *testing.B) { benchParse(b, true) }

// BenchmarkReadOnlyBaseline only reads the same bytes (sums them as
// little-endian uint32 words, no output): the cost of touching the input once.
func BenchmarkReadOnlyBaseline(b *testing.B) {
	files, total := dayFiles(b, false)
	b.SetBytes(total)
	b.ReportAllocs()
	var sink uint32
	for b.Loop() {
		for _, d := range files {
			var s uint32
			for i := 0; i+4 <= len(d); i += 4 {
				s += binary.LittleEndian.Uint32(d[i:])
			}
			sink += s
		}
	}
	if sink == 0 {
		b.Fatal("nothing read")
	}
	b.ReportMetric(float64(4*minDay)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkParseMinDayPortableLoop decodes the little-endian day with the
// portable per-sample loop instead of the bulk copy, to show what the copy buys.
func BenchmarkParseMinDayPortableLoop(b *testing.B) {
	files, total := dayFiles(b, false)
	b.SetBytes(total)
	b.ReportAllocs()
	var sink int32
	for b.Loop() {
		for _, d := range files {
			h, err := ParseHeader(d)
			if err != nil {
				b.Fatal(err)
			}
			f := &File{Header: h}
			decodeBodyWith(f, d[h.HeaderSize:], false)
			sink += f.Ints[len(f.Ints)-1]
		}
	}
	if sink == 0 {
		b.Fatal("nothing decoded")
	}
	b.ReportMetric(float64(4*minDay)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkParseVsBaseline alternates the read-only baseline and Parse over
// the same little-endian day inside each iteration and reports their speed
// ratio, which is far steadier than comparing two separate benchmarks on a
// shared, loaded machine.
func BenchmarkParseVsBaseline(b *testing.B) {
	files, total := dayFiles(b, false)
	b.SetBytes(total)
	b.ReportAllocs()
	var base, parse time.Duration
	var sinkU uint32
	var sinkI int32
	for b.Loop() {
		t0 := time.Now()
		for _, d := range files {
			var s uint32
			for i := 0; i+4 <= len(d); i += 4 {
				s += binary.LittleEndian.Uint32(d[i:])
			}
			sinkU += s
		}
		t1 := time.Now()
		for _, d := range files {
			f, err := Parse("bench", d)
			if err != nil {
				b.Fatal(err)
			}
			sinkI += f.Ints[len(f.Ints)-1]
		}
		t2 := time.Now()
		base += t1.Sub(t0)
		parse += t2.Sub(t1)
	}
	if sinkU == 0 || sinkI == 0 {
		b.Fatal("nothing done")
	}
	mb := float64(total) * float64(b.N) / 1e6
	b.ReportMetric(mb/parse.Seconds(), "parse-MB/s")
	b.ReportMetric(mb/base.Seconds(), "baseline-MB/s")
	b.ReportMetric(base.Seconds()/parse.Seconds(), "parse/baseline-speed")
}
