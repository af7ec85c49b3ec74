package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/earthscope/gtsm-stream/record"
	"github.com/linkedin/goavro/v2"
)

// FuzzDecodeValue feeds arbitrary messages to a Serde whose registry knows
// our schemas and a Flink-like writer: it must answer with an error or a
// record, never panic, and frame errors must be the typed ones.
func FuzzDecodeValue(f *testing.F) {
	reg, _, s := newSerde(&testing.T{})
	fid, _, err := reg.RegisterSchema("gtsm_etl-value", srSchema(flinkValue))
	if err != nil {
		f.Fatal(err)
	}
	codec, err := goavro.NewCodec(flinkValue)
	if err != nil {
		f.Fatal(err)
	}
	body, err := codec.BinaryFromNative(nil, map[string]any{
		"ls2_t0": goavro.Union("int", int32(49196540)), "site": goavro.Union("string", "B009"),
		"extra": nil, "time": nil, "ls1_t0": nil, "timestamp": []byte("x"), "rs1_t0": int32(-7),
	})
	if err != nil {
		f.Fatal(err)
	}
	r := sample()
	f.Add(s.AppendValue(nil, &r))
	f.Add(frame(fid, body))
	f.Add(s.AppendKey(nil, "B009"))
	f.Add([]byte{0, 0, 0, 0})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, msg []byte) {
		var got record.Record
		err := s.DecodeValue(ctx, msg, &got)
		if len(msg) < HeaderSize || msg[0] != 0 {
			if !errors.Is(err, ErrBadMagic) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("bad frame % x: %v", msg, err)
			}
		}
		// Any registered record schema resolves to our fields (the key
		// schema's site included), but nothing else may decode.
		id, _, _ := SplitHeader(msg)
		known := id == s.KeyID() || id == s.ValueID() || id == fid
		if err == nil && !known {
			t.Fatalf("decoded a message of unknown schema id %d", id)
		}
		if _, err := s.DecodeKey(ctx, msg); err == nil && !known {
			t.Fatalf("decoded a key of schema id %d", id)
		}
	})
}
