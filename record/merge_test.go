package record

import (
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/internal/testutil"
)

func field(t testing.TB, name string) int {
	t.Helper()
	i, ok := FieldIndex(name)
	if !ok {
		t.Fatalf("no field %s", name)
	}
	return i
}

func TestMergeRealDay(t *testing.T) {
	files := readReal(t, "B20319115", nil)
	recs, err := Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	const start = int64(1556150400000)
	if len(recs) != 144 {
		t.Fatalf("got %d records, want 144", len(recs))
	}
	for i, r := range recs {
		if r.Time != start+int64(i)*600000 {
			t.Fatalf("record %d at %d, want the 600 s grid", i, r.Time)
		}
		if r.Site != "B203" || r.Session != bottle.Day || !r.IsSet(FieldSite) || !r.IsSet(FieldTime) || !r.IsSet(FieldTimestamp) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if s, ok := InferSession(&r); !ok || s != bottle.Day {
			t.Fatalf("record %d: inferred %v %v", i, s, ok)
		}
	}
	if recs[3].Timestamp != "2019-04-25 00:30:00" {
		t.Fatalf("timestamp %q", recs[3].Timestamp)
	}
	byName := map[string]*bottle.File{}
	for _, f := range files {
		byName[f.Info.Channel] = f
	}
	for _, f := range files {
		fi := field(t, f.Info.Field)
		firstMs, stepMs := f.Header.StartMs()-start, f.Header.IntervalMs()
		for i, r := range recs {
			off := r.Time - start - firstMs
			onGrid := off >= 0 && off%stepMs == 0 && off/stepMs < int64(f.Len())
			v, set := r.Int(fi)
			if !onGrid {
				if set {
					t.Fatalf("%s: record %d (%s) has %s set off the file's grid", f.Name, i, r.Timestamp, f.Info.Field)
				}
				continue
			}
			k := int(off / stepMs)
			if f.IsMissing(k) {
				if set {
					t.Fatalf("%s: missing sample %d is set", f.Name, k)
				}
				continue
			}
			want, _ := sampleValue(f, k)
			if !set || v != want {
				t.Fatalf("%s: record %d %s = %d,%v; want %d", f.Name, i, f.Info.Field, v, set, want)
			}
		}
	}
	// The ancillary channels sit at the 1800 s instants, the hourly
	// RTSetting/Cal channels at hh:30.
	if byName["BatteryVolts"].Header.IntervalMs() != 1800000 || byName["RTSettingCH0"].Header.StartMs() != start+1800000 {
		t.Fatalf("unexpected real file headers")
	}
	re1, rca := field(t, "re1_t0"), field(t, "rca_t0")
	for i, r := range recs {
		_, hasRe1 := r.Int(re1)
		_, hasRca := r.Int(rca)
		if hasRe1 != (i%3 == 0) {
			t.Errorf("record %d (%s): re1_t0 set = %v", i, r.Timestamp, hasRe1)
		}
		if hasRca != (i%6 == 3) {
			t.Errorf("record %d (%s): rca_t0 set = %v", i, r.Timestamp, hasRca)
		}
		for _, f := range []string{"ls1_t0", "bs1_t0"} {
			if r.IsSet(field(t, f)) {
				t.Fatalf("record %d has %s set", i, f)
			}
		}
	}
	// A float channel is round(v*10000): the pressure at 00:00.
	p := byName["PressureKPa"]
	if got, _ := recs[0].Int(field(t, "rdo_ts")); got != int32(math.Round(float64(p.Floats[0])*10000)) || got < 800000 {
		t.Errorf("rdo_ts = %d from %v kPa", got, p.Floats[0])
	}
}

func TestMergeRealHour(t *testing.T) {
	files := readReal(t, "B0241923600", nil)
	recs, err := Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3600 {
		t.Fatalf("got %d records, want 3600", len(recs))
	}
	ls := StrainFields(bottle.Hour)
	for i, r := range recs {
		if r.Time != 1566604800000+int64(i)*1000 || r.Session != bottle.Hour {
			t.Fatalf("record %d: time %d session %v", i, r.Time, r.Session)
		}
		for c, fi := range ls {
			v, set := r.Int(fi)
			if i == 1500 || i == 1821 {
				if set {
					t.Fatalf("record %d: %s set to %d, want null (999999 in the file)", i, FieldNames[fi], v)
				}
				continue
			}
			if !set || v != files[c].Ints[i] || v < 41000000 || v > 57000000 {
				t.Fatalf("record %d: %s = %d,%v want %d", i, FieldNames[fi], v, set, files[c].Ints[i])
			}
		}
		if r.Set&^(1<<FieldSite|1<<FieldTime|1<<FieldTimestamp|0xF<<ls[0]) != 0 {
			t.Fatalf("record %d has fields of another session: %b", i, r.Set)
		}
	}
	if recs[1500].Timestamp != "2019-08-24 00:25:00" {
		t.Errorf("timestamp %q", recs[1500].Timestamp)
	}
}

func TestMergeRealMin(t *testing.T) {
	files := readReal(t, "B2021901700", nil)
	recs, err := Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 30*1200 {
		t.Fatalf("got %d records, want 36000", len(recs))
	}
	allNull := 0
	for i, r := range recs {
		if r.Time != 1547683200000+int64(i)*50 {
			t.Fatalf("record %d at %d", i, r.Time)
		}
		if r.Set>>FirstInt == 0 {
			allNull++
		}
	}
	if recs[1].Timestamp != "2019-01-17 00:00:00.050" || recs[20].Timestamp != "2019-01-17 00:00:01" {
		t.Errorf("timestamps %q %q", recs[1].Timestamp, recs[20].Timestamp)
	}
	t.Logf("%d of %d Min instants have every channel missing", allNull, len(recs))
}

func TestScaleFloat(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want int32
		ok   bool
	}{
		{13.5, 135000, true},
		{0.03125, 313, true},   // 312.5 exactly: half away from zero
		{-0.03125, -313, true}, // not -312 (that would be half to even / toward +inf)
		{0.09375, 938, true},   // 937.5 exactly
		{0.00035, 3, true},     // float32(0.00035) is 3.4999999e-4: rounding sees the float32 value
		{1.00005, 10000, true}, // float32 1.00004995
		{0.00015, 2, true},     // float32 1.50000007e-4
		{-92.123, -921230, true},
		{0, 0, true},
		{214748.36, 2147483594, true}, // float32 214748.359375: near the int32 limit
		{1e6, 0, false},
		{-1e6, 0, false},
		{float32(math.NaN()), 0, false},
		{float32(math.Inf(1)), 0, false},
	} {
		got, ok := ScaleFloat(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ScaleFloat(%v) = %d,%v want %d,%v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestMergeMemory(t *testing.T) {
	const t0 = int64(1625097600000)
	ch0 := memFile(t, "B0092118200CH0", t0, 1000, []int32{1, 999999, 3}, nil)
	ch1 := memFile(t, "B0092118200CH1", t0+1000, 1000, []int32{-5, 6, 7}, nil) // shifted by one sample
	recs, err := Merge([]*bottle.File{ch0, ch1})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		time     int64
		ls1, ls2 any
	}
	exp := []want{{t0, int32(1), nil}, {t0 + 1000, nil, int32(-5)}, {t0 + 2000, int32(3), int32(6)}, {t0 + 3000, nil, int32(7)}}
	if len(recs) != len(exp) {
		t.Fatalf("%d records", len(recs))
	}
	get := func(r *Record, f int) any {
		if v, ok := r.Int(f); ok {
			return v
		}
		return nil
	}
	for i, e := range exp {
		r := &recs[i]
		if r.Time != e.time || get(r, 7) != e.ls1 || get(r, 8) != e.ls2 {
			t.Errorf("record %d: time %d ls1 %v ls2 %v, want %+v", i, r.Time, get(r, 7), get(r, 8), e)
		}
	}

	// Float channels: scaled, rounded, the fill value is null.
	bv := memFile(t, "B00921182BatteryVolts", t0, 1800000, nil, []float32{13.5, 999999, -0.03125})
	recs, err = Merge([]*bottle.File{bv})
	if err != nil {
		t.Fatal(err)
	}
	re1 := field(t, "re1_t0")
	if v, ok := recs[0].Int(re1); !ok || v != 135000 {
		t.Errorf("re1_t0[0] = %d,%v", v, ok)
	}
	if _, ok := recs[1].Int(re1); ok {
		t.Errorf("999999 fill must be null")
	}
	if v, _ := recs[2].Int(re1); v != -313 {
		t.Errorf("re1_t0[2] = %d", v)
	}

	// The same channel twice (overlapping files) agreeing is fine.
	dup := memFile(t, "B0092118200CH0", t0+2000, 1000, []int32{3, 4}, nil)
	if recs, err = Merge([]*bottle.File{ch0, dup}); err != nil || len(recs) != 4 {
		t.Fatalf("overlap: %d records, %v", len(recs), err)
	}
}

func TestMergeErrors(t *testing.T) {
	const t0 = int64(1625097600000)
	ch0 := memFile(t, "B0092118200CH0", t0, 1000, []int32{1, 2}, nil)
	for _, c := range []struct {
		name  string
		files []*bottle.File
		want  string
	}{
		{"two sites", []*bottle.File{ch0, memFile(t, "B0102118200CH1", t0, 1000, []int32{1}, nil)}, "one site and session"},
		{"two sessions", []*bottle.File{ch0, memFile(t, "B009211820000CH1_20", t0, 50, []int32{1}, nil)}, "one site and session"},
		{"conflict", []*bottle.File{ch0, memFile(t, "B0092118200CH0", t0+1000, 1000, []int32{9}, nil)}, "sample 0 (2021-07-01 00:00:01) gives ls1_t0 = 9, but another file gave 2"},
		{"float overflow", []*bottle.File{memFile(t, "B00921182PressureKPa", t0, 1800000, nil, []float32{92, 5e5})}, "B00921182PressureKPa: sample 1: float 500000"},
		{"no info", []*bottle.File{{Name: "x"}}, "no name info"},
	} {
		_, err := Merge(c.files)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to say %q", c.name, err, c.want)
		}
	}
	if recs, err := Merge(nil); recs != nil || err != nil {
		t.Errorf("Merge(nil) = %v, %v", recs, err)
	}
}

func TestInferSession(t *testing.T) {
	mk := func(ms int64, fields ...string) *Record {
		r := &Record{}
		r.SetSite("B009")
		r.SetTime(ms)
		for _, f := range fields {
			r.SetInt(field(t, f), 1)
		}
		return r
	}
	for _, c := range []struct {
		r    *Record
		want bottle.Session
		ok   bool
	}{
		{mk(0, "rs1_t0"), bottle.Day, true},
		{mk(0, "rdo_ts", "rcd_t8"), bottle.Day, true},
		{mk(0, "ls4_t0"), bottle.Hour, true},
		{mk(50, "bs2_t0", "bs3_t0"), bottle.Min, true},
		{mk(50), bottle.Min, true},
		{mk(1000), 0, false},
		{mk(0, "ls1_t0", "bs1_t0"), 0, false},
	} {
		s, ok := InferSession(c.r)
		if s != c.want || ok != c.ok {
			t.Errorf("set %b time %d: got %v,%v want %v,%v", c.r.Set, c.r.Time, s, ok, c.want, c.ok)
		}
	}
}

func TestFormatTimestamp(t *testing.T) {
	cases := []int64{0, 1, -1, 999, 1000, -1000, 1625097600000, 1547683200050, 951782400000 /* 2000-02-29 */, 4107542400000, /* 2100-03-01 */
		-62135596800000 /* 0001-01-01 */, -62167219200000 /* 0000-01-01 */, -62167219200001, 253402300799999 /* 9999-12-31 23:59:59.999 */, 253402300800000,
		math.MaxInt64 / 1000, math.MinInt64 / 1000}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		cases = append(cases, rng.Int64N(1<<46)-1<<45, rng.Int64N(4102444800000))
	}
	for _, ms := range cases {
		if got, want := FormatTimestamp(ms), formatSlow(ms); got != want {
			t.Fatalf("FormatTimestamp(%d) = %q, time.Format says %q", ms, got, want)
		}
	}
}

// TestMergerStream compares the streaming merge with the plain definition
// (one record per distinct sample time of any file, sorted, each carrying
// every file's value at that instant) on random file sets, including files
// off any common grid, far apart, overlapping copies of one channel, files
// longer than a chunk (bottle.SampleChunk), and the same files read from disk
// (bottle.ReadHeader: chunked reads) instead of memory, with Next asked for
// 1 (small sets), 7 or 5000 records at a time.
func TestMergerStream(t *testing.T) {
	testutil.Long(t)
	rng := rand.New(rand.NewPCG(9, 10))
	intervals := []int64{50, 1000, 600000, 1800000, 3600000, 7}
	channels := []string{"B0092118200CH0", "B0092118200CH1", "B0092118200CH2", "B0092118200CH3"}
	dir := t.TempDir()
	for n := range 150 {
		var files, disk []*bottle.File
		type slot struct {
			set [4]bool
			v   [4]int32
		}
		want := map[int64]*slot{}
		base := rng.Int64N(1<<41) - 1<<40
		for k := range 1 + rng.IntN(4) {
			dt := intervals[rng.IntN(len(intervals))]
			start := base + dt*rng.Int64N(100)
			switch rng.IntN(4) {
			case 0:
				start += rng.Int64N(1000) // off the grid
			case 1:
				start += rng.Int64N(1 << 40) // far away
			}
			size := rng.IntN(50)
			if rng.IntN(8) == 0 {
				size = bottle.SampleChunk + rng.IntN(2*bottle.SampleChunk)
			}
			ints := make([]int32, size)
			for i := range ints {
				ints[i] = int32(rng.IntN(1000))
				if rng.IntN(10) == 0 {
					ints[i] = 999999
				}
			}
			f := memFile(t, channels[k], 0, dt, ints, nil)
			f.Header.Start = float64(start) / 1000
			if f.Header.StartMs() != start {
				continue // not representable as a float64 of seconds
			}
			for i, v := range ints {
				tm := f.Header.TimeMs(i)
				s := want[tm]
				if s == nil {
					s = &slot{}
					want[tm] = s
				}
				if v != 999999 {
					s.set[k], s.v[k] = true, v
				}
			}
			files = append(files, f)
			b, err := bottle.Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			sub := filepath.Join(dir, fmt.Sprint(n))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(sub, channels[k])
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			df, err := bottle.ReadHeader(path)
			if err != nil {
				t.Fatal(err)
			}
			if !df.OnDisk() || df.Len() != size {
				t.Fatalf("ReadHeader: on disk %v, %d samples, want %d", df.OnDisk(), df.Len(), size)
			}
			disk = append(disk, df)
		}
		times := slices.Sorted(maps.Keys(want))
		for _, set := range [][]*bottle.File{files, disk} {
			for _, chunk := range []int{1, 7, 5000} {
				if chunk == 1 && len(times) > 1000 {
					continue // one record per call is slow to check; small sets cover it
				}
				m, err := NewMerger(set)
				if err != nil {
					t.Fatal(err)
				}
				var got []Record
				buf := make([]Record, chunk)
				for {
					k, err := m.Next(buf)
					got = append(got, buf[:k]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if len(got) != len(times) {
					t.Fatalf("set %d chunk %d: %d records, want %d", n, chunk, len(got), len(times))
				}
				for i, r := range got {
					if r.Time != times[i] || r.Timestamp != FormatTimestamp(times[i]) {
						t.Fatalf("set %d chunk %d: record %d at %d %q, want %d", n, chunk, i, r.Time, r.Timestamp, times[i])
					}
					s := want[r.Time]
					for k := range 4 {
						v, ok := r.Int(FirstInt + 4 + k) // ls1_t0..ls4_t0
						if ok != s.set[k] || ok && v != s.v[k] {
							t.Fatalf("set %d chunk %d: record %d ls%d_t0 = %d,%v, want %d,%v", n, chunk, i, k+1, v, ok, s.v[k], s.set[k])
						}
					}
				}
			}
		}
	}
}
