package record

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/linkedin/goavro/v2"
)

// readmeRecord is the README's example message: B009 at 2021-07-01 00:00:00
// with ls1_t0 48116355 and ls2_t0 49196540.
func readmeRecord() Record {
	var r Record
	r.SetSite("B009")
	r.SetTime(1625097600000)
	r.SetInt(StrainFields(bottle.Hour)[0], 48116355)
	r.SetInt(StrainFields(bottle.Hour)[1], 49196540)
	r.Session = bottle.Hour
	return r
}

// goldenLine is the dry-run line of readmeRecord, written out by hand.
func goldenLine() string {
	var b strings.Builder
	b.WriteString(`{"topic":"gtsm_etl","key":{"site":"B009"},"value":{"site":{"string":"B009"},"time":{"long":1625097600000},"timestamp":{"string":"2021-07-01 00:00:00"}`)
	for _, f := range FieldNames[FirstInt:] {
		switch f {
		case "ls1_t0":
			b.WriteString(`,"ls1_t0":{"int":48116355}`)
		case "ls2_t0":
			b.WriteString(`,"ls2_t0":{"int":49196540}`)
		default:
			b.WriteString(`,"` + f + `":null`)
		}
	}
	b.WriteString("}}")
	return b.String()
}

func TestAppendJSONGolden(t *testing.T) {
	r := readmeRecord()
	got := string(AppendJSON(nil, "gtsm_etl", &r))
	want := goldenLine()
	if got != want {
		t.Fatalf("dry-run line changed:\n got %s\nwant %s", got, want)
	}
	if !strings.HasPrefix(got, `{"topic":"gtsm_etl","key":{"site":"B009"},"value":{"site":{"string":"B009"},"time":{"long":1625097600000},"timestamp":{"string":"2021-07-01 00:00:00"},"rs1_t0":null,`) {
		t.Fatalf("prefix: %s", got[:200])
	}
}

// TestAppendJSONGoldenFromFiles builds the README record from helper A's
// fixture files when they exist.
func TestAppendJSONGoldenFromFiles(t *testing.T) {
	dir := filepath.Join("..", "testdata", "hour")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("fixtures %s absent: %v", dir, err)
	}
	var files []*bottle.File
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		f, err := bottle.Parse(e.Name(), data)
		if err != nil {
			t.Fatal(err)
		}
		if f.Info, err = bottle.ParseName(e.Name()); err != nil {
			t.Skipf("%s: %v", e.Name(), err)
		}
		files = append(files, f)
	}
	recs, err := Merge(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Site != "B009" || recs[0].Time != 1625097600000 {
		t.Fatalf("first record %+v", recs)
	}
	// The fixture fills all four channels; the README line shows two.
	r := recs[0]
	if v, _ := r.Int(StrainFields(bottle.Hour)[0]); v != 48116355 {
		t.Fatalf("ls1_t0 = %d", v)
	}
	if v, _ := r.Int(StrainFields(bottle.Hour)[1]); v != 49196540 {
		t.Fatalf("ls2_t0 = %d", v)
	}
	r.Set &^= 1<<StrainFields(bottle.Hour)[2] | 1<<StrainFields(bottle.Hour)[3]
	if got := string(AppendJSON(nil, "gtsm_etl", &r)); got != goldenLine() {
		t.Fatalf("from fixtures:\n got %s\nwant %s", got, goldenLine())
	}
}

// TestAppendJSONMatchesGoavro checks the value part against goavro's Avro
// JSON encoding, field by field, and that goavro can read it back.
func TestAppendJSONMatchesGoavro(t *testing.T) {
	codec := valueCodec(t)
	keyCodec, err := goavro.NewCodec(avroschemas.Key)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 300 {
		r := randomRecord(rng)
		if n == 0 {
			r = readmeRecord()
		}
		line := AppendJSON(nil, "gtsm_etl", &r)
		var msg struct {
			Topic string
			Key   json.RawMessage
			Value json.RawMessage
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, line)
		}
		if msg.Topic != "gtsm_etl" {
			t.Fatalf("topic %q", msg.Topic)
		}
		textual, err := codec.TextualFromNative(nil, native(&r))
		if err != nil {
			t.Fatal(err)
		}
		var ours, theirs map[string]any
		if err := json.Unmarshal(msg.Value, &ours); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(textual, &theirs); err != nil {
			t.Fatal(err)
		}
		for _, f := range FieldNames {
			if !reflect.DeepEqual(ours[f], theirs[f]) {
				t.Fatalf("record %d field %s: ours %v goavro %v", n, f, ours[f], theirs[f])
			}
		}
		if len(ours) != NumFields {
			t.Fatalf("%d value fields", len(ours))
		}
		// goavro reads our value JSON back to the same record.
		nat, _, err := codec.NativeFromTextual(msg.Value)
		if err != nil {
			t.Fatalf("goavro cannot read our JSON: %v\n%s", err, msg.Value)
		}
		if back := fromNative(t, nat.(map[string]any)); back.Set != r.Set || back.Site != r.Site || back.Ints != r.Ints || back.Timestamp != r.Timestamp {
			t.Fatalf("record %d: goavro read %+v want %+v", n, back, r)
		}
		k, _, err := keyCodec.NativeFromTextual(msg.Key)
		if err != nil || k.(map[string]any)["site"] != r.Site {
			t.Fatalf("key %s: %v %v", msg.Key, k, err)
		}
	}
}
