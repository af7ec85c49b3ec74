package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
	"github.com/earthscope/gtsm-stream/bottle"
	"github.com/earthscope/gtsm-stream/record"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

func sample() record.Record {
	var r record.Record
	r.SetSite("B009")
	r.SetTime(1625097600000)
	r.SetInt(record.StrainFields(bottle.Hour)[0], 48116355)
	r.SetInt(record.StrainFields(bottle.Hour)[1], 49196540)
	r.Session = bottle.Hour
	return r
}

func newSerde(t *testing.T) (*srfake.Registry, *Client, *Serde) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	c := newTestClient(t, Config{URL: reg.URL()})
	s, err := NewSerde(context.Background(), c, "gtsm_etl", avroschemas.Key, avroschemas.Value)
	if err != nil {
		t.Fatal(err)
	}
	return reg, c, s
}

func frame(id int, body []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

func TestSerdeRoundTrip(t *testing.T) {
	reg, _, s := newSerde(t)
	ctx := context.Background()
	if !reg.SubjectExists("gtsm_etl-key") || !reg.SubjectExists("gtsm_etl-value") {
		t.Fatal("subjects not registered under TopicNameStrategy names")
	}
	r := sample()
	val := s.AppendValue(nil, &r)
	key := s.AppendKey(nil, r.Site)

	// The bytes are the Confluent frame around goavro's encoding.
	vc, _ := goavro.NewCodec(avroschemas.Value)
	nat := map[string]any{}
	for i, f := range record.FieldNames[record.FirstInt:] {
		nat[f] = nil
		if v, ok := r.Int(record.FirstInt + i); ok {
			nat[f] = goavro.Union("int", v)
		}
	}
	nat["site"] = goavro.Union("string", "B009")
	nat["time"] = goavro.Union("long", int64(1625097600000))
	nat["timestamp"] = goavro.Union("string", "2021-07-01 00:00:00")
	body, err := vc.BinaryFromNative(nil, nat)
	if err != nil {
		t.Fatal(err)
	}
	if want := frame(s.ValueID(), body); !bytes.Equal(val, want) {
		t.Fatalf("value\n got % x\nwant % x", val, want)
	}
	if want := frame(s.KeyID(), []byte{8, 'B', '0', '0', '9'}); !bytes.Equal(key, want) {
		t.Fatalf("key % x want % x", key, want)
	}

	var got record.Record
	got.Session = bottle.Hour
	if err := s.DecodeValue(ctx, val, &got); err != nil || got != r {
		t.Fatalf("DecodeValue = %+v, %v", got, err)
	}
	if site, err := s.DecodeKey(ctx, key); err != nil || site != "B009" {
		t.Fatalf("DecodeKey = %q, %v", site, err)
	}
}

func TestSerdeErrors(t *testing.T) {
	_, _, s := newSerde(t)
	ctx := context.Background()
	r := sample()
	val := s.AppendValue(nil, &r)
	for _, c := range []struct {
		name string
		msg  []byte
		kind error
		text string
	}{
		{"bad magic", append([]byte{0x7b}, val[1:]...), ErrBadMagic, "byte 0x7b at offset 0"},
		{"empty", nil, ErrTruncated, "empty message"},
		{"short header", val[:3], ErrTruncated, "message of 3 bytes"},
		{"unknown id", frame(4711, val[5:]), ErrUnknownSchemaID, "schema id 4711"},
		{"truncated body", val[:12], ErrTruncated, "body offset"},
		{"trailing bytes", append(append([]byte{}, val...), 0, 0), record.ErrCorrupt, "2 bytes left over"},
	} {
		var got record.Record
		err := s.DecodeValue(ctx, c.msg, &got)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v; want %v saying %q", c.name, err, c.kind, c.text)
		}
	}
	if _, err := s.DecodeKey(ctx, []byte{1, 0, 0, 0, 1, 8}); !errors.Is(err, ErrBadMagic) || !strings.Contains(err.Error(), "byte 0x01") {
		t.Errorf("key bad magic: %v", err)
	}
	if _, err := s.DecodeKey(ctx, frame(s.KeyID(), []byte{8, 'B'})); !errors.Is(err, ErrTruncated) {
		t.Errorf("key truncated: %v", err)
	}
}

// flinkValue is what Flink's avro-confluent format registers for a table with
// a subset of our columns: its own record name and namespace, ["null",T]
// unions, a column we do not know, and columns in another order.
const flinkValue = `{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[
 {"name":"ls2_t0","type":["null","int"],"default":null},
 {"name":"site","type":["null","string"],"default":null},
 {"name":"extra","type":["null","double"],"default":null},
 {"name":"time","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
 {"name":"ls1_t0","type":["null","int"],"default":null},
 {"name":"timestamp","type":"bytes"},
 {"name":"rs1_t0","type":"int"}]}`

const flinkKey = `{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[{"name":"site","type":["null","string"],"default":null}]}`

func TestSerdeForeignWriter(t *testing.T) {
	reg, c, s := newSerde(t)
	ctx := context.Background()
	var lookups atomic.Int32
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			lookups.Add(1)
		}
		return false
	})
	// Flink registers under the same subject; the consumer must resolve it.
	fid, _, err := reg.RegisterSchema("gtsm_etl-value", srSchema(flinkValue))
	if err != nil {
		t.Fatal(err)
	}
	kid, _, err := reg.RegisterSchema("gtsm_etl-key", srSchema(flinkKey))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(flinkValue)
	if err != nil {
		t.Fatal(err)
	}
	body, err := codec.BinaryFromNative(nil, map[string]any{
		"ls2_t0": goavro.Union("int", int32(49196540)), "site": goavro.Union("string", "B009"),
		"extra": goavro.Union("double", 1.5), "time": nil, "ls1_t0": nil,
		"timestamp": []byte("2021-07-01 00:00:00"), "rs1_t0": int32(-7),
	})
	if err != nil {
		t.Fatal(err)
	}
	var want record.Record
	want.SetSite("B009")
	want.Timestamp, want.Set = "2021-07-01 00:00:00", want.Set|1<<record.FieldTimestamp
	want.SetInt(record.StrainFields(bottle.Hour)[1], 49196540)
	want.SetInt(record.StrainFields(bottle.Day)[0], -7)
	want.Session = bottle.Hour // not in the body: kept from the caller's record
	for range 3 {
		got := sample() // stale fields must be cleared
		if err := s.DecodeValue(ctx, frame(fid, body), &got); err != nil || got != want {
			t.Fatalf("Flink value: %+v, %v\nwant %+v", got, err, want)
		}
	}
	// The time as timestamp-millis (time.Time in goavro) comes back as epoch ms.
	body, err = codec.BinaryFromNative(nil, map[string]any{
		"ls2_t0": nil, "site": nil, "extra": nil, "time": goavro.Union("long.timestamp-millis", int64(1625097600050)),
		"ls1_t0": goavro.Union("int", int32(5)), "timestamp": []byte{}, "rs1_t0": int32(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got record.Record
	if err := s.DecodeValue(ctx, frame(fid, body), &got); err != nil || got.Time != 1625097600050 || !got.IsSet(record.FieldTime) || got.IsSet(record.FieldSite) {
		t.Fatalf("timestamp-millis: %+v %v", got, err)
	}
	kb, err := goavro.NewCodec(flinkKey)
	if err != nil {
		t.Fatal(err)
	}
	kbody, _ := kb.BinaryFromNative(nil, map[string]any{"site": goavro.Union("string", "B203")})
	if site, err := s.DecodeKey(ctx, frame(kid, kbody)); err != nil || site != "B203" {
		t.Fatalf("Flink key: %q %v", site, err)
	}
	if n := lookups.Load(); n != 2 {
		t.Errorf("%d schema lookups, want 2 (one per writer id, then cached)", n)
	}
	if err := s.DecodeValue(ctx, frame(fid, body[:len(body)-1]), &got); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated Flink body: %v", err)
	}

	// A writer whose field cannot be read as ours is refused, naming it.
	bad := `{"type":"record","name":"r","fields":[{"name":"ls1_t0","type":["null","string"]}]}`
	bid, err := c.Register(ctx, "other-value", bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DecodeValue(ctx, frame(bid, []byte{0}), &got); err == nil || !strings.Contains(err.Error(), `field "ls1_t0"`) || !strings.Contains(err.Error(), "cannot be read as int") {
		t.Errorf("unreadable writer: %v", err)
	}
	// int -> long promotion for time; long -> int is not an Avro promotion.
	prom := `{"type":"record","name":"r","fields":[{"name":"time","type":"int"}]}`
	pid, _ := c.Register(ctx, "other-value", prom)
	pc, _ := goavro.NewCodec(prom)
	pb, _ := pc.BinaryFromNative(nil, map[string]any{"time": int32(-12345)})
	if err := s.DecodeValue(ctx, frame(pid, pb), &got); err != nil || got.Time != -12345 || got.Set != 1<<record.FieldTime {
		t.Errorf("int time: %+v %v", got, err)
	}
	narrow := `{"type":"record","name":"r","fields":[{"name":"rs1_t0","type":"long"}]}`
	nid, _ := c.Register(ctx, "other-value", narrow)
	if err := s.DecodeValue(ctx, frame(nid, []byte{2}), &got); err == nil || !strings.Contains(err.Error(), `field "rs1_t0"`) {
		t.Errorf("long into int: %v", err)
	}
}

// A second version of our layout (time as a real timestamp-millis) under a
// new id decodes through the fast path to the same record.
func TestSerdeSameLayoutOtherID(t *testing.T) {
	reg, _, s := newSerde(t)
	v2 := strings.Replace(avroschemas.Value, `"type": ["long","null"], "logicaltype": "timestamp-millis"`, `"type": [{"type":"long","logicalType":"timestamp-millis"},"null"]`, 1)
	if v2 == avroschemas.Value {
		t.Fatal("replacement did not apply")
	}
	id, _, err := reg.RegisterSchema("gtsm_etl-value", srSchema(v2))
	if err != nil || id == s.ValueID() {
		t.Fatalf("id %d %v", id, err)
	}
	r := sample()
	msg := frame(id, record.AppendAvro(nil, &r))
	var got record.Record
	got.Session = bottle.Hour
	if err := s.DecodeValue(context.Background(), msg, &got); err != nil || got != r {
		t.Fatalf("%+v %v", got, err)
	}
	w, err := s.writer(context.Background(), id, false)
	if err != nil || !w.fast {
		t.Fatalf("layout-identical writer not on the fast path: %+v %v", w, err)
	}
}

func TestNewSerdeRefusesOtherLayouts(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	c := newTestClient(t, Config{URL: reg.URL()})
	ctx := context.Background()
	swapped := strings.Replace(avroschemas.Value, `"name": "rs1_t0"`, `"name": "rsX_t0"`, 1)
	for _, c2 := range []struct{ key, value, want string }{
		{avroschemas.Key, flinkValue, "has 7 fields"},
		{avroschemas.Key, swapped, `field 3 is "rsX_t0", want "rs1_t0"`},
		{flinkKey, avroschemas.Value, "field site has type"},
		{avroschemas.Key, `"string"`, "not an Avro record"},
	} {
		_, err := NewSerde(ctx, c, "gtsm_etl", c2.key, c2.value)
		if err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("NewSerde: %v, want %q", err, c2.want)
		}
	}
	if reg.SubjectExists("gtsm_etl-value") {
		t.Error("a refused schema was registered")
	}
}

func TestLoadSchemas(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	c := newTestClient(t, Config{URL: reg.URL()})
	ctx := context.Background()

	k, v, err := LoadSchemas(ctx, nil, "", "gtsm_etl")
	if err != nil || k != avroschemas.Key || v != avroschemas.Value {
		t.Fatalf("embedded: %v", err)
	}
	root := t.TempDir()
	myKey := strings.Replace(avroschemas.Key, "Four Character ID of Site", "overridden", 1)
	myValue := strings.Replace(avroschemas.Value, "four character id of site", "overridden", 1)
	os.WriteFile(filepath.Join(root, "gtsm_etl-key.avsc"), []byte(myKey), 0o644)
	os.WriteFile(filepath.Join(root, "gtsm_etl-value.avsc"), []byte(myValue), 0o644)
	if k, v, err = LoadSchemas(ctx, nil, root, "gtsm_etl"); err != nil || k != myKey || v != myValue {
		t.Fatalf("both files: %v", err)
	}
	// The value file absent: the registry's latest value.
	os.Remove(filepath.Join(root, "gtsm_etl-value.avsc"))
	if _, _, err = LoadSchemas(ctx, nil, root, "gtsm_etl"); err == nil || !strings.Contains(err.Error(), "gtsm_etl-value.avsc is absent and no schema registry") {
		t.Fatalf("absent without registry: %v", err)
	}
	if _, _, err = LoadSchemas(ctx, c, root, "gtsm_etl"); err == nil || !strings.Contains(err.Error(), "latest gtsm_etl-value") {
		t.Fatalf("absent, subject unknown: %v", err)
	}
	registered := strings.Replace(avroschemas.Value, "four character id of site", "from the registry", 1)
	if _, err := c.Register(ctx, "gtsm_etl-value", registered); err != nil {
		t.Fatal(err)
	}
	if k, v, err = LoadSchemas(ctx, c, root, "gtsm_etl"); err != nil || k != myKey || !strings.Contains(v, "from the registry") {
		t.Fatalf("value from registry: %.60q %v", v, err)
	}
	// Another topic reads its own file names.
	os.WriteFile(filepath.Join(root, "other-key.avsc"), []byte(myKey), 0o644)
	os.WriteFile(filepath.Join(root, "other-value.avsc"), []byte(myValue), 0o644)
	if k, v, err = LoadSchemas(ctx, nil, root, "other"); err != nil || k != myKey || v != myValue {
		t.Fatalf("other topic: %v", err)
	}
	// A directory where the file should be is an error, not a fallback.
	os.Mkdir(filepath.Join(root, "dir-key.avsc"), 0o755)
	if _, _, err = LoadSchemas(ctx, c, root, "dir"); err == nil || !strings.Contains(err.Error(), "dir-key.avsc") {
		t.Fatalf("unreadable file: %v", err)
	}
}

// Concurrent decoders share the writer cache and the client's id cache.
func TestSerdeConcurrent(t *testing.T) {
	reg, _, s := newSerde(t)
	fid, _, err := reg.RegisterSchema("gtsm_etl-value", srSchema(flinkValue))
	if err != nil {
		t.Fatal(err)
	}
	codec, _ := goavro.NewCodec(flinkValue)
	body, err := codec.BinaryFromNative(nil, map[string]any{
		"ls2_t0": nil, "site": goavro.Union("string", "B009"), "extra": nil, "time": nil,
		"ls1_t0": goavro.Union("int", int32(1)), "timestamp": []byte("t"), "rs1_t0": int32(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := sample()
	ours := s.AppendValue(nil, &r)
	foreign := frame(fid, body)
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var got record.Record
			var err error
			for range 200 {
				msg := ours
				if g%2 == 1 {
					msg = foreign
				}
				if err = s.DecodeValue(context.Background(), msg, &got); err != nil {
					break
				}
				if got.Site != "B009" {
					err = errors.New("wrong site " + got.Site)
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Keys written as a bare Avro string (as some producers do) decode too.
func TestSerdeStringKey(t *testing.T) {
	_, c, s := newSerde(t)
	ctx := context.Background()
	id, err := c.Register(ctx, "plain-key", `"string"`)
	if err != nil {
		t.Fatal(err)
	}
	body := record.AppendKeyAvro(nil, "B916") // a string is encoded like the one-field record
	if site, err := s.DecodeKey(ctx, frame(id, body)); err != nil || site != "B916" {
		t.Fatalf("string key: %q %v", site, err)
	}
	id, err = c.Register(ctx, "plain-key", `{"type":"string"}`)
	if err != nil {
		t.Fatal(err)
	}
	if site, err := s.DecodeKey(ctx, frame(id, body)); err != nil || site != "B916" {
		t.Fatalf("{type: string} key: %q %v", site, err)
	}
	iid, err := c.Register(ctx, "int-key", `"int"`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecodeKey(ctx, frame(iid, []byte{2})); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("int key: %v", err)
	}
}
