package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/earthscope/gtsm-stream/internal/testutil"
)

// TestRetryAfterKillIsDuplicate plays what an idempotent producer does when
// the broker is killed with batches in flight: it re-sends them, with their
// sequence numbers, to the restarted broker. The broker must answer each
// batch the log already holds as a duplicate (the original offset, nothing
// appended) and accept the next one. Before producer state was rebuilt from
// the log, the restarted kfake knew the producer id but not its sequences and
// appended every retry again (the duplicates of TestBrokerRestart/SIGKILL).
//
// kill -9 is simulated by copying the data directory of a running broker: a
// killed process leaves exactly the bytes it wrote (the page cache outlives
// it), and no Close-time save runs.
func TestRetryAfterKillIsDuplicate(t *testing.T) {
	testutil.Long(t)
	tests := []struct {
		name       string
		seq        int32 // first sequence of the re-sent batch
		wantOffset int64 // base offset in the answer
		wantEnd    int64 // high watermark afterwards
	}{
		{"last acknowledged batch again", 40, 40, 50},
		{"oldest of the five remembered", 0, 0, 50},
		{"middle batch", 20, 20, 50},
		{"next new batch", 50, 50, 60},
	}
	for _, syncWrites := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/sync=%v", tc.name, syncWrites), func(t *testing.T) {
				retryAfterKill(t, syncWrites, nil, tc.seq, tc.wantOffset, tc.wantEnd)
			})
		}
	}
	// kfake loads sequence windows only for producer ids its pids.log
	// knows; one it created implicitly (a producer that outlived an earlier
	// restart) is written there only when the log is compacted. The rebuild
	// adds the missing ids in kfake's framing: an empty pids.log must not
	// matter.
	damages := []struct {
		name string
		file string
		data []byte
	}{
		{"producer id missing from pids.log", "pids.log", nil},
		// kfake itself refuses to start on a seq_windows.json it cannot
		// parse; the log's windows replace it.
		{"seq_windows.json torn", "seq_windows.json", []byte(`{"version":1,"windows":[{"pid":`)},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			retryAfterKill(t, false, func(kdir string) error {
				return os.WriteFile(filepath.Join(kdir, d.file), d.data, 0o644)
			}, 40, 40, 50)
		})
	}
}

// TestRetryAfterCleanStop: after Close kfake saves the windows itself, and
// the rebuild (which runs on every start) must agree with them: a retry is
// still a duplicate and the next batch still accepted.
func TestRetryAfterCleanStop(t *testing.T) {
	const topic = "clean"
	dir := t.TempDir()
	cfg := Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: dir}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := rawClient(t, s.BootstrapServers)
	id := createTopic(t, cl, topic)
	pid, epoch := initProducerID(t, cl)
	for first := int32(0); first < 30; first += 10 {
		if _, err := produceBatch(cl, topic, id, pid, epoch, first, 10); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	s.Close()
	s2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	cl2 := rawClient(t, s2.BootstrapServers)
	for _, tc := range []struct {
		seq          int32
		off, wantEnd int64
	}{{20, 20, 30}, {30, 30, 40}} {
		off, err := produceBatch(cl2, topic, id, pid, epoch, tc.seq, 10)
		if err != nil || off != tc.off {
			t.Errorf("batch seq %d after a clean restart: offset %d, %v; want %d", tc.seq, off, err, tc.off)
		}
		if end := endOffset(t, cl2, topic); end != tc.wantEnd {
			t.Errorf("log ends at %d after seq %d, want %d", end, tc.seq, tc.wantEnd)
		}
	}
}

// retryAfterKill produces 5 batches of 10, kills the broker (copies its
// data), optionally damages a file of kfake's directory, restarts and
// re-sends the batch with first sequence seq.
func retryAfterKill(t *testing.T, syncWrites bool, damage func(kdir string) error, seq int32, wantOffset, wantEnd int64) {
	const topic, perBatch = "crash", 10
	live := t.TempDir()
	s, err := Start(Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: live, SyncWrites: syncWrites})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl := rawClient(t, s.BootstrapServers)
	id := createTopic(t, cl, topic)
	pid, epoch := initProducerID(t, cl)
	for first := int32(0); first < 50; first += perBatch {
		off, err := produceBatch(cl, topic, id, pid, epoch, first, perBatch)
		if err != nil || off != int64(first) {
			t.Fatalf("batch seq %d before the kill: offset %d, %v", first, off, err)
		}
	}

	killed := t.TempDir()
	copyDir(t, live, killed) // the state kill -9 leaves behind
	if damage != nil {
		if err := damage(filepath.Join(killed, "kafka")); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Start(Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", DataDir: killed, SyncWrites: syncWrites})
	if err != nil {
		t.Fatalf("restart on the killed broker's data: %v", err)
	}
	defer s2.Close()
	cl2 := rawClient(t, s2.BootstrapServers)
	if end := endOffset(t, cl2, topic); end != 50 {
		t.Fatalf("after the kill the log ends at %d, want the 50 acknowledged records", end)
	}
	off, err := produceBatch(cl2, topic, id, pid, epoch, seq, perBatch)
	if err != nil {
		t.Fatalf("re-sent batch seq %d: %v", seq, err)
	}
	if off != wantOffset {
		t.Errorf("re-sent batch seq %d answered at offset %d, want %d", seq, off, wantOffset)
	}
	if end := endOffset(t, cl2, topic); end != wantEnd {
		t.Errorf("log ends at %d after re-sending seq %d, want %d (a retry appended twice?)", end, seq, wantEnd)
	}
}

// TestRebuildLeavesFreshDirAlone: a directory kfake never initialised, or one
// without idempotent batches, gets no state files from the rebuild.
func TestRebuildLeavesFreshDirAlone(t *testing.T) {
	for _, name := range []string{"missing", "empty"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "kafka")
			if name == "empty" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := rebuildProducerState(dir); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"seq_windows.json", "pids.log"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Errorf("%s written into a directory kfake never used", f)
				}
			}
		})
	}
}

// TestPartDirNames: kfake names partition directories
// url.PathEscape(topic)-partition; topics may contain dashes and escapes.
func TestPartDirNames(t *testing.T) {
	tests := []struct {
		name, topic string
		part        int32
		ok          bool
	}{
		{"gtsm_etl-2", "gtsm_etl", 2, true},
		{"gtsm_etl.dlq-0", "gtsm_etl.dlq", 0, true},
		{"a-b-c-11", "a-b-c", 11, true},
		{"odd%2Fname-1", "odd/name", 1, true},
		{"nopart", "", 0, false},
		{"-3", "", 0, false},
		{"t-x", "", 0, false},
	}
	for _, tc := range tests {
		topic, part, ok := parsePartDir(tc.name)
		if topic != tc.topic || part != tc.part || ok != tc.ok {
			t.Errorf("parsePartDir(%q) = %q, %d, %v; want %q, %d, %v", tc.name, topic, part, ok, tc.topic, tc.part, tc.ok)
		}
	}
}

func rawClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic returns the topic's id: produce v13+ names topics by id.
func createTopic(t *testing.T, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return resp.Topics[0].TopicID
}

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// produceBatch sends one idempotent batch of n records with the given first
// sequence to partition 0, as a client's retry would, and returns the base
// offset the broker answers.
func produceBatch(cl *kgo.Client, topic string, id [16]byte, pid int64, epoch int16, seq, n int32) (int64, error) {
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: i, Value: []byte("seq " + strconv.Itoa(int(seq+i)))}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the rest after the 1-byte varint 0
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: n - 1,
		FirstTimestamp: 1700000000000, MaxTimestamp: 1700000000000,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: n, Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:12], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))

	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		return 0, err
	}
	p := resp.Topics[0].Partitions[0]
	return p.BaseOffset, kerr.ErrorForCode(p.ErrorCode)
}

func endOffset(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("end offset of %s: %v", topic, err)
	}
	return resp.Topics[0].Partitions[0].Offset
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}
