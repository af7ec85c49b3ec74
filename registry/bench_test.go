package registry

import (
	"context"
	"testing"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/linkedin/goavro/v2"
)

// benchRecords are realistic messages: a Min record (4 strain channels at a
// 50 ms instant) and a Day record at hh:30 (4 strain channels, the 8
// ancillary channels, RTSetting and 13 Cal fields), values as in the real
// B202 and B203 files.
func benchRecords() map[string]record.Record {
	var minRec, dayRec record.Record
	minRec.SetSite("B202")
	minRec.SetTime(1547683200050)
	minRec.Session = bottle.Min
	for c, f := range record.StrainFields(bottle.Min) {
		minRec.SetInt(f, int32(45123456+c*1234567))
	}
	dayRec.SetSite("B203")
	dayRec.SetTime(1556152200000)
	dayRec.Session = bottle.Day
	for c, f := range record.StrainFields(bottle.Day) {
		dayRec.SetInt(f, int32(51234567-c*2345678))
	}
	for name, v := range map[string]int32{
		"re1_t0": 135210, "reo_t0": 1230, "re2_t0": 4560, "rkd_t0": 231234, "rk1_t0": 284567,
		"rk2_t0": 301234, "rdo_ts": 921234, "rro_ts": 0,
		"rca_t0": 3, "rcb_t0": 3, "rcc_t0": 3, "rcd_t0": 3,
		"rca_t3": 123456, "rcb_t3": -23456, "rcc_t3": 34567, "rcd_t2": 4567, "rcd_t3": -567,
		"rca_t5": 9876543, "rca_t6": 8765432, "rcb_t5": 7654321, "rcb_t6": 6543210,
		"rcc_t5": 5432109, "rcc_t6": 4321098, "rcd_t5": 3210987, "rcd_t6": 2109876,
	} {
		i, _ := record.FieldIndex(name)
		dayRec.SetInt(i, v)
	}
	return map[string]record.Record{"Min": minRec, "Day": dayRec}
}

// ring is n consecutive records like r (one session interval apart), so
// that a benchmark sees a changing timestamp as a real stream does.
func ring(r record.Record, n int) []record.Record {
	step := map[bottle.Session]int64{bottle.Day: 600000, bottle.Hour: 1000, bottle.Min: 50}[r.Session]
	var set []int
	for f := record.FirstInt; f < record.NumFields; f++ {
		if r.IsSet(f) {
			set = append(set, f)
		}
	}
	out := make([]record.Record, n)
	for i := range out {
		out[i] = r
		out[i].SetTime(r.Time + int64(i)*step)
		f := set[i%len(set)] // and values that vary
		v, _ := r.Int(f)
		out[i].SetInt(f, v+int32(i))
	}
	return out
}

func benchSerde(b *testing.B) *Serde {
	b.Helper()
	_, _, s := newSerde(&testing.T{})
	return s
}

// goavroNative is what a producer on goavro's generic path builds per record.
func goavroNative(r *record.Record) map[string]any {
	m := make(map[string]any, record.NumFields)
	for i, name := range record.FieldNames {
		switch {
		case !r.IsSet(i):
			m[name] = nil
		case i == record.FieldSite:
			m[name] = goavro.Union("string", r.Site)
		case i == record.FieldTime:
			m[name] = goavro.Union("long", r.Time)
		case i == record.FieldTimestamp:
			m[name] = goavro.Union("string", r.Timestamp)
		default:
			v, _ := r.Int(i)
			m[name] = goavro.Union("int", v)
		}
	}
	return m
}

// goavroRecord is what a consumer on goavro's generic path does per record.
func goavroRecord(m map[string]any, r *record.Record) {
	*r = record.Record{Session: r.Session}
	for i, name := range record.FieldNames {
		u, _ := m[name].(map[string]any)
		if u == nil {
			continue
		}
		switch i {
		case record.FieldSite:
			r.SetSite(u["string"].(string))
		case record.FieldTime:
			r.Time = u["long"].(int64)
			r.Set |= 1 << record.FieldTime
		case record.FieldTimestamp:
			r.Timestamp = u["string"].(string)
			r.Set |= 1 << record.FieldTimestamp
		default:
			r.SetInt(i, u["int"].(int32))
		}
	}
}

func perSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkEncode(b *testing.B) {
	s := benchSerde(b)
	codec, err := goavro.NewCodec(avroschemas.Value)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"Min", "Day"} {
		recs := ring(benchRecords()[name], 1024)
		b.Run(name+"/ours", func(b *testing.B) {
			buf := make([]byte, 0, 512)
			i := 0
			for b.Loop() {
				buf = s.AppendValue(buf[:0], &recs[i&1023])
				i++
			}
			b.SetBytes(int64(len(buf)))
			perSecond(b)
		})
		b.Run(name+"/goavro", func(b *testing.B) {
			buf := make([]byte, 0, 512)
			i := 0
			for b.Loop() {
				buf = append(buf[:0], s.valHdr[:]...)
				if buf, err = codec.BinaryFromNative(buf, goavroNative(&recs[i&1023])); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.SetBytes(int64(len(buf)))
			perSecond(b)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	s := benchSerde(b)
	ctx := context.Background()
	codec, err := goavro.NewCodec(avroschemas.Value)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"Min", "Day"} {
		recs := ring(benchRecords()[name], 1024)
		msgs := make([][]byte, len(recs))
		for i := range recs {
			msgs[i] = s.AppendValue(nil, &recs[i])
		}
		b.Run(name+"/ours", func(b *testing.B) {
			var got record.Record
			got.Session = recs[0].Session
			i := 0
			for b.Loop() {
				if err := s.DecodeValue(ctx, msgs[i&1023], &got); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if got != recs[(i-1)&1023] {
				b.Fatalf("decoded %+v", got)
			}
			b.SetBytes(int64(len(msgs[0])))
			perSecond(b)
		})
		b.Run(name+"/goavro", func(b *testing.B) {
			var got record.Record
			got.Session = recs[0].Session
			i := 0
			for b.Loop() {
				_, body, err := SplitHeader(msgs[i&1023])
				i++
				if err != nil {
					b.Fatal(err)
				}
				nat, _, err := codec.NativeFromBinary(body)
				if err != nil {
					b.Fatal(err)
				}
				goavroRecord(nat.(map[string]any), &got)
			}
			if got != recs[(i-1)&1023] {
				b.Fatalf("decoded %+v", got)
			}
			b.SetBytes(int64(len(msgs[0])))
			perSecond(b)
		})
	}
}
