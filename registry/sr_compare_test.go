package registry

// Why registry/ keeps its own Serde and client instead of franz-go's pkg/sr
// (issue 15): docs/registry.md has the figures and the reasoning; these are
// the checks behind each claim there.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// srSerde is franz-go's sr.Serde set up as a gtsm consumer would: our value
// schema's id registered with an encode and a decode function.
func srSerde(id int, enc func([]byte, any) ([]byte, error), dec func([]byte, any) error) *sr.Serde {
	var s sr.Serde
	s.Register(id, &record.Record{}, sr.AppendEncodeFn(enc), sr.DecodeFn(dec))
	return &s
}

// ourCodec plugs record's Avro codec into sr.Serde.
func ourCodec() (func([]byte, any) ([]byte, error), func([]byte, any) error) {
	return func(b []byte, v any) ([]byte, error) { return record.AppendAvro(b, v.(*record.Record)), nil },
		func(b []byte, v any) error { _, err := record.DecodeAvro(b, v.(*record.Record)); return err }
}

// goavroCodec plugs goavro's generic codec into sr.Serde: what using sr
// "as documented" with an Avro library gives.
func goavroCodec(tb testing.TB) (func([]byte, any) ([]byte, error), func([]byte, any) error) {
	codec, err := goavro.NewCodec(avroschemas.Value)
	if err != nil {
		tb.Fatal(err)
	}
	return func(b []byte, v any) ([]byte, error) {
			return codec.BinaryFromNative(b, goavroNative(v.(*record.Record)))
		},
		func(b []byte, v any) error {
			nat, _, err := codec.NativeFromBinary(b)
			if err != nil {
				return err
			}
			goavroRecord(nat.(map[string]any), v.(*record.Record))
			return nil
		}
}

// The same bytes either way: sr's Confluent framing and ours agree, so a
// switch would be possible for the framing alone.
func TestSRFramingAgrees(t *testing.T) {
	_, _, s := newSerde(t)
	enc, dec := ourCodec()
	srs := srSerde(s.ValueID(), enc, dec)
	r := sample()
	theirs, err := srs.AppendEncode(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	if ours := s.AppendValue(nil, &r); string(ours) != string(theirs) {
		t.Fatalf("sr frame % x\nours     % x", theirs, ours)
	}
	var got record.Record
	got.Session = r.Session
	if err := srs.Decode(theirs, &got); err != nil || got != r {
		t.Fatalf("sr decode: %+v %v", got, err)
	}
}

// What sr.Serde cannot do and a consumer of gtsm_etl needs: decode a message
// whose writer schema id it was not told about in advance (Flink's writer,
// registered under the same subject after the consumer started). sr.Serde
// answers ErrNotRegistered; ours fetches the writer schema by id once and
// resolves it against the reader layout.
func TestSRSerdeCannotResolveUnknownWriter(t *testing.T) {
	reg, _, s := newSerde(t)
	fid, _, err := reg.RegisterSchema("gtsm_etl-value", srSchema(flinkValue))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(flinkValue)
	if err != nil {
		t.Fatal(err)
	}
	body, err := codec.BinaryFromNative(nil, map[string]any{
		"ls2_t0": goavro.Union("int", int32(49196540)), "site": goavro.Union("string", "B009"),
		"extra": nil, "time": nil, "ls1_t0": nil, "timestamp": []byte("2021-07-01 00:00:00"), "rs1_t0": int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := frame(fid, body)
	enc, dec := ourCodec()
	var got record.Record
	if err := srSerde(s.ValueID(), enc, dec).Decode(msg, &got); !errors.Is(err, sr.ErrNotRegistered) {
		t.Fatalf("sr.Serde on Flink's writer id: %v, want ErrNotRegistered", err)
	}
	if err := s.DecodeValue(context.Background(), msg, &got); err != nil || got.Site != "B009" {
		t.Fatalf("ours on Flink's writer id: %+v %v", got, err)
	}
}

// What sr.Client does not do and gtsm process relies on (a registry that is
// down while the processor starts is waited for): sr.Client tries each URL
// once and returns the first 503; ours retries with backoff until the
// registry answers (or ctx ends).
func TestSRClientDoesNotRetry(t *testing.T) {
	reg, _, _ := newSerde(t)
	var fails atomic.Int32
	fails.Store(2)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(-1) >= 0 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		proxy, _ := http.NewRequestWithContext(r.Context(), r.Method, reg.URL()+r.URL.Path, r.Body)
		proxy.Header = r.Header
		resp, err := http.DefaultClient.Do(proxy)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer flaky.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl, err := sr.NewClient(sr.URLs(flaky.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SchemaByID(ctx, 1); err == nil {
		t.Fatal("sr.Client: no error from a 503")
	}
	fails.Store(2)
	ours := newTestClient(t, Config{URL: flaky.URL})
	if _, err := ours.SchemaByID(ctx, 1); err != nil {
		t.Fatalf("ours through two 503s: %v", err)
	}
}

// BenchmarkSRDecode compares decoding one framed value through sr.Serde
// (with our codec, and with goavro's) and through ours: the cost of sr's
// framing and type lookup, and the cost of the Avro codec one plugs into it.
func BenchmarkSRDecode(b *testing.B) {
	s := benchSerde(b)
	recs := ring(benchRecords()["Day"], 1024)
	msgs := make([][]byte, len(recs))
	for i := range recs {
		msgs[i] = s.AppendValue(nil, &recs[i])
	}
	oenc, odec := ourCodec()
	genc, gdec := goavroCodec(b)
	withOurs, withGoavro := srSerde(s.ValueID(), oenc, odec), srSerde(s.ValueID(), genc, gdec)
	for _, tc := range []struct {
		name   string
		decode func([]byte, *record.Record) error
	}{
		{"ours", func(m []byte, r *record.Record) error { return s.DecodeValue(context.Background(), m, r) }},
		{"sr+ours", func(m []byte, r *record.Record) error { return withOurs.Decode(m, r) }},
		{"sr+goavro", func(m []byte, r *record.Record) error { return withGoavro.Decode(m, r) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var got record.Record
			got.Session = recs[0].Session
			i := 0
			for b.Loop() {
				if err := tc.decode(msgs[i&1023], &got); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if got != recs[(i-1)&1023] {
				b.Fatalf("decoded %+v", got)
			}
			perSecond(b)
		})
	}
}
