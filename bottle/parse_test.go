package bottle

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// header builds a little-endian header with the given fields and a body of
// body bytes, for bad-input cases that the writer refuses to produce.
func rawFile(mut func(b []byte), body int) []byte {
	b := make([]byte, 40+body)
	le := binary.LittleEndian
	le.PutUint16(b[0:], Magic)
	le.PutUint32(b[4:], 40)
	le.PutUint64(b[8:], math.Float64bits(1625097600))
	le.PutUint32(b[16:], math.Float32bits(1))
	le.PutUint32(b[20:], uint32(body/4))
	le.PutUint32(b[24:], uint32(Int32))
	le.PutUint32(b[28:], 999999)
	if mut != nil {
		mut(b)
	}
	return b
}

func TestParseBadInput(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"short header", rawFile(nil, 0)[:39], "header truncated: 39 bytes, need 40"},
		{"wrong magic", rawFile(func(b []byte) { b[0], b[1] = 'B', '0' }, 8), "bad magic 42 30 at offset 0"},
		{"unknown data type", rawFile(func(b []byte) { le.PutUint32(b[24:], 3) }, 8), "unknown data_type 3 at offset 24"},
		{"negative data type", rawFile(func(b []byte) { le.PutUint32(b[24:], math.MaxUint32) }, 8), "unknown data_type -1"},
		{"header_size < 40", rawFile(func(b []byte) { le.PutUint32(b[4:], 39) }, 8), "header_size 39 at offset 4 is below 40"},
		{"header_size negative", rawFile(func(b []byte) { le.PutUint32(b[4:], 0x80000000) }, 8), "header_size -2147483648"},
		{"header_size beyond file", rawFile(func(b []byte) { le.PutUint32(b[4:], math.MaxInt32) }, 8), "truncated body"},
		{"negative num_pts", rawFile(func(b []byte) { le.PutUint32(b[20:], 0xFFFFFFFF) }, 8), "negative num_pts -1 at offset 20"},
		{"absurd num_pts", rawFile(func(b []byte) { le.PutUint32(b[20:], math.MaxInt32) }, 8), "num_pts 2147483647 × 4 bytes needs 8589934628 bytes, file has 48"},
		{"truncated body", rawFile(nil, 400)[:439], "truncated body"},
		{"trailing bytes", append(rawFile(nil, 400), 0, 0), "2 bytes after the last sample: header_size 40 + num_pts 100 × 4 bytes ends at 440, file has 442"},
		{"int16 data_type on an int32 body", rawFile(func(b []byte) { le.PutUint32(b[24:], uint32(Int16)) }, 400), "200 bytes after the last sample"},
		{"NaN start", rawFile(func(b []byte) { le.PutUint64(b[8:], math.Float64bits(math.NaN())) }, 8), "start NaN at offset 8"},
		{"zero interval", rawFile(func(b []byte) { le.PutUint32(b[16:], 0) }, 8), "interval 0 at offset 16"},
		{"sub-ms interval", rawFile(func(b []byte) { le.PutUint32(b[16:], math.Float32bits(0.0001)) }, 8), "interval 0.0001"},
		{"negative interval", rawFile(func(b []byte) { le.PutUint32(b[16:], math.Float32bits(-1)) }, 8), "interval -1"},
		{"infinite interval", rawFile(func(b []byte) { le.PutUint32(b[16:], math.Float32bits(float32(math.Inf(1)))) }, 8), "interval +Inf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			f, err := Parse("some/B0092118200CH0", c.data)
			runtime.ReadMemStats(&ms1)
			if err == nil {
				t.Fatalf("parsed %+v, want error %q", f.Header, c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "some/B0092118200CH0: ") {
				t.Errorf("error %q, want it to name the file and contain %q", err, c.want)
			}
			// Never allocate more than the input could hold.
			if d := ms1.TotalAlloc - ms0.TotalAlloc; d > 64<<10 {
				t.Errorf("allocated %d bytes for a %d-byte input", d, len(c.data))
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "notes.txt")
	writeFile(t, bad, []byte("x"))
	if _, err := ReadFile(bad); !errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), bad) {
		t.Errorf("ReadFile(%s) = %v, want an ErrBadName naming the path", bad, err)
	}
	empty := filepath.Join(dir, "B0092118200CH0")
	writeFile(t, empty, nil)
	if _, err := ReadFile(empty); err == nil || err.Error() != empty+": empty file" {
		t.Errorf("ReadFile(empty) = %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "B0092118200CH1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(absent) = %v", err)
	}
	if _, err := Read("r", bytes.NewReader(rawFile(nil, 8)[:45])); err == nil || !strings.Contains(err.Error(), "r: truncated body") {
		t.Errorf("Read(truncated) = %v", err)
	}
}

// TestEncodeGolden pins the writer's bytes to ones computed independently
// (Python struct.pack), so a symmetric bug in reader and writer cannot hide.
func TestEncodeGolden(t *testing.T) {
	cases := []struct {
		f   File
		hex string
	}{
		{File{Header: Header{BigEndian: true, HeaderSize: 40, Start: 1625097600.5, Interval: 0.05, DataType: Int32, Missing: 999999},
			Ints: []int32{48116355, -1}},
			"015d00000000002841d83741602000003d4ccccd0000000200000001000f423f000000000000000002de3283ffffffff"},
		{File{Header: Header{HeaderSize: 44, Start: 1625097600, Interval: 1800, DataType: Float32, Missing: 999999, ID: 7},
			Floats: []float32{92.25, -0.5}},
			"5d0100002c000000000000604137d8410000e14402000000020000003f420f000000000007000000000000000080b842000000bf"},
		{File{Header: Header{Interval: 1, DataType: Int16, Missing: 32767}, Ints: []int32{-32768, 32767}},
			"5d0100002800000000000000000000000000803f0200000000000000ff7f000000000000000000000080ff7f"},
	}
	for i, c := range cases {
		b, err := Encode(&c.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != c.hex {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, c.hex)
		}
		back, err := Parse("golden", b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if back.Header.HeaderSize < 40 || back.Len() != 2 {
			t.Errorf("case %d: parsed back %+v", i, back.Header)
		}
	}
}

// TestRoundTrip writes and reads every type in both byte orders and two
// header sizes, with extreme and fill values.
func TestRoundTrip(t *testing.T) {
	ints := map[DataType][]int32{
		Int16: {0, 1, -1, math.MinInt16, math.MaxInt16, 12345},
		Int32: {0, 1, -1, math.MinInt32, math.MaxInt32, 999999, 48116355},
	}
	floats := []float32{0, -0.5, 13.52, 92.3456, 999999, float32(math.Inf(1)), math.SmallestNonzeroFloat32, math.MaxFloat32}
	for _, typ := range []DataType{Int16, Int32, Float32} {
		for _, big := range []bool{false, true} {
			for _, hs := range []int32{40, 64} {
				h := Header{BigEndian: big, HeaderSize: hs, Start: 1625097600.25, Interval: 0.05, DataType: typ, Missing: 999999, USGSLock: 3, ID: 6, Unused: 0}
				in := &File{Header: h, Ints: ints[typ]}
				if typ == Float32 {
					in.Floats = floats
				}
				b, err := Encode(in)
				if err != nil {
					t.Fatal(err)
				}
				n := in.Len()
				if len(b) != int(hs)+n*typ.Size() {
					t.Errorf("%v big=%v hs=%d: %d bytes, want %d", typ, big, hs, len(b), int(hs)+n*typ.Size())
				}
				out, err := Parse("rt", b)
				if err != nil {
					t.Fatalf("%v big=%v hs=%d: %v", typ, big, hs, err)
				}
				want := h
				want.NumPts = int32(n)
				if out.Header != want {
					t.Errorf("%v big=%v hs=%d: header %+v, want %+v", typ, big, hs, out.Header, want)
				}
				if typ == Float32 {
					for i := range floats {
						if math.Float32bits(out.Floats[i]) != math.Float32bits(floats[i]) {
							t.Errorf("%v big=%v: float %d = %v, want %v", typ, big, i, out.Floats[i], floats[i])
						}
					}
					if out.Ints != nil || !out.IsMissing(4) || out.IsMissing(3) {
						t.Errorf("float file: Ints %v, IsMissing(4) %v", out.Ints, out.IsMissing(4))
					}
				} else {
					if !slicesEqual(out.Ints, ints[typ]) || out.Floats != nil {
						t.Errorf("%v big=%v: ints %v, want %v", typ, big, out.Ints, ints[typ])
					}
				}
				if out.Header.TimeMs(3) != 1625097600250+150 {
					t.Errorf("TimeMs(3) = %d", out.Header.TimeMs(3))
				}
			}
		}
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		f    File
		want string
	}{
		{"int16 range", File{Header: Header{DataType: Int16, Interval: 1}, Ints: []int32{1, 40000}}, "sample 1 = 40000 does not fit int16"},
		{"unknown type", File{Header: Header{DataType: 9, Interval: 1}}, "unknown data type 9"},
		{"small header", File{Header: Header{DataType: Int32, HeaderSize: 20, Interval: 1}}, "header_size 20 below 40"},
		{"num_pts mismatch", File{Header: Header{DataType: Int32, NumPts: 3, Interval: 1}, Ints: []int32{1}}, "Header.NumPts 3 but 1 samples"},
		{"floats in int file", File{Header: Header{DataType: Int32, Interval: 1}, Floats: []float32{1}}, "samples belong in Ints"},
		{"ints in float file", File{Header: Header{DataType: Float32, Interval: 1}, Ints: []int32{1}}, "samples belong in Floats"},
	}
	for _, c := range cases {
		c.f.Name = "X"
		b, err := Append([]byte("keep"), &c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "encode X") {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if string(b) != "keep" {
			t.Errorf("%s: Append changed dst on error: %q", c.name, b)
		}
	}
}

// TestDecodeBulkMatchesLoop checks the little-endian bulk copy against the
// portable per-sample decoder on arbitrary bytes, for every type and order.
func TestDecodeBulkMatchesLoop(t *testing.T) {
	if !hostLittleEndian {
		t.Skip("bulk copy is used only on little-endian hosts")
	}
	body := make([]byte, 4*1001)
	for i := range body {
		body[i] = byte(i*131 + i>>8*7)
	}
	for _, typ := range []DataType{Int16, Int32, Float32} {
		for _, big := range []bool{false, true} {
			for _, n := range []int{0, 1, 1001} {
				h := Header{BigEndian: big, DataType: typ, NumPts: int32(n)}
				bulk, loop := &File{Header: h}, &File{Header: h}
				decodeBodyWith(bulk, body, true)
				decodeBodyWith(loop, body, false)
				if bulk.Len() != n || loop.Len() != n {
					t.Fatalf("%v big=%v n=%d: lengths %d %d", typ, big, n, bulk.Len(), loop.Len())
				}
				for i := 0; i < n; i++ {
					if typ == Float32 {
						if math.Float32bits(bulk.Floats[i]) != math.Float32bits(loop.Floats[i]) {
							t.Fatalf("%v big=%v: float %d: %x vs %x", typ, big, i, math.Float32bits(bulk.Floats[i]), math.Float32bits(loop.Floats[i]))
						}
					} else if bulk.Ints[i] != loop.Ints[i] {
						t.Fatalf("%v big=%v: int %d: %d vs %d", typ, big, i, bulk.Ints[i], loop.Ints[i])
					}
				}
				if n > 0 && typ == Int32 && !big && loop.Ints[0] != int32(binary.LittleEndian.Uint32(body)) {
					t.Fatalf("loop decoder wrong: %d", loop.Ints[0])
				}
			}
		}
	}
}
