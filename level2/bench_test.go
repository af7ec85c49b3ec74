package level2

import (
	"math"
	"testing"
)

// BenchmarkPushStrain is the cost of one second of one station's data
// (four gauges) through the whole machine, tide-like input, no holes.
func BenchmarkPushStrain(b *testing.B) {
	st := tsm5(b)
	m := New(ConfigFrom(&st))
	const t0 = 1672531200
	var out []Point
	var err error
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s := int64(t0 + i)
		v := int32(50000000 + 300*math.Sin(float64(s)*2*math.Pi/44714))
		if out, err = m.PushStrain(s, [4]int32{v, v + 7, v - 3, v + 11}, out[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
