package embedded

// Producer-state recovery for kfake's data directory after a crash.
//
// kfake keeps each idempotent producer's last five (firstSeq, nextSeq,
// offset) batch entries per partition in memory (txns.go, pidwindow) and
// writes them to seq_windows.json only in saveToDisk, i.e. on Close
// (persist.go saveToDisk → saveSeqWindows). Segments (.dat) and pids.log are
// appended as batches arrive, so after kill -9 the records and the producer
// ids survive but the windows are those of the last clean start. With no
// window (seen=false) kfake accepts any first sequence (00_produce.go, the
// pushAndValidate "!s.seen" branch), so a producer re-sending the batches
// whose acknowledgements the kill swallowed gets them appended a second time
// instead of answered as duplicates. A real Kafka broker rebuilds this state
// from the log (every RecordBatch header carries producer id, epoch and first
// sequence); rebuildProducerState does the same before kfake loads the
// directory, writing the windows in kfake's own seq_windows.json format.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seqWindows mirrors kfake's persistSeqWindows (persist.go); field names and
// JSON tags must match it exactly, the file is read by kfake's loadSeqWindows.
type seqWindows struct {
	Version int         `json:"version"`
	Windows []seqWindow `json:"windows"`
}

type seqWindow struct {
	PID     int64       `json:"pid"`
	Topic   string      `json:"topic"`
	Part    int32       `json:"partition"`
	Entries [5]seqEntry `json:"entries,omitempty"`
	Count   uint8       `json:"count,omitempty"`
	Seq     *[5]int32   `json:"seq,omitempty"`     // kfake's legacy v1 form, kept as read
	Offsets *[5]int64   `json:"offsets,omitempty"` // kfake's legacy v1 form, kept as read
	At      uint8       `json:"at"`
	Epoch   int16       `json:"epoch"`
	Seen    bool        `json:"seen,omitempty"`
	NextSeq int32       `json:"next_seq,omitempty"`
}

type seqEntry struct {
	FirstSeq int32 `json:"first_seq"`
	NextSeq  int32 `json:"next_seq"`
	Offset   int64 `json:"offset"`
}

// push records one batch that the log holds, the way kfake's
// pidwindow.pushAndValidate recorded it when it was accepted: an epoch change
// (or the first batch) restarts the window, otherwise the entry goes into the
// five-slot ring and nextSeq advances.
func (w *seqWindow) push(epoch int16, firstSeq, numRecs int32, offset int64) {
	next := int32((int64(firstSeq) + int64(numRecs)) % math.MaxInt32)
	if !w.Seen || epoch != w.Epoch {
		w.Seen, w.Epoch, w.NextSeq = true, epoch, next
		w.Entries = [5]seqEntry{{firstSeq, next, offset}}
		w.At, w.Count = 1, 1
		return
	}
	w.NextSeq = next
	w.Entries[w.At] = seqEntry{firstSeq, next, offset}
	w.At = (w.At + 1) % 5
	if w.Count < 5 {
		w.Count++
	}
}

type windowKey struct {
	pid   int64
	topic string
	part  int32
}

// rebuildProducerState derives every idempotent producer's sequence window
// from the segments of kfake's data directory dir and writes them to
// seq_windows.json, replacing the windows of any (producer, partition) the log
// holds batches for and keeping the others as kfake last saved them. Producer
// ids seen in the log but missing from pids.log are appended to it, since
// kfake only loads windows of producers it knows. A directory kfake never
// initialised (no meta.json) is left alone.
func rebuildProducerState(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	windows := map[windowKey]*seqWindow{}
	epochs := map[int64]int16{} // highest epoch per producer id in the log

	partsDir := filepath.Join(dir, "partitions")
	parts, err := os.ReadDir(partsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("broker data %s: %w", partsDir, err)
	}
	for _, pe := range parts {
		if !pe.IsDir() {
			continue
		}
		topic, part, ok := parsePartDir(pe.Name())
		if !ok {
			continue
		}
		pdir := filepath.Join(partsDir, pe.Name())
		err := eachLogBatch(pdir, func(b *kmsg.RecordBatch) {
			if b.ProducerID < 0 || b.Attributes&0x0020 != 0 { // not idempotent, or a transaction marker
				return
			}
			k := windowKey{b.ProducerID, topic, part}
			w := windows[k]
			if w == nil {
				w = &seqWindow{PID: b.ProducerID, Topic: topic, Part: part}
				windows[k] = w
			}
			w.push(b.ProducerEpoch, b.FirstSequence, b.NumRecords, b.FirstOffset)
			if e, ok := epochs[b.ProducerID]; !ok || b.ProducerEpoch > e {
				epochs[b.ProducerID] = b.ProducerEpoch
			}
		})
		if err != nil {
			return err
		}
	}
	if len(windows) == 0 {
		return nil
	}
	if err := ensurePIDs(filepath.Join(dir, "pids.log"), epochs); err != nil {
		return err
	}

	path := filepath.Join(dir, "seq_windows.json")
	out := seqWindows{Version: 1}
	if b, err := os.ReadFile(path); err == nil {
		// A file kfake cannot parse would stop its start; the log's
		// windows replace it, only those of partitions without batches
		// are lost (kfake then accepts their next sequence as new).
		var old seqWindows
		if json.Unmarshal(b, &old) != nil {
			old = seqWindows{}
		}
		for _, w := range old.Windows {
			if windows[windowKey{w.PID, w.Topic, w.Part}] == nil {
				out.Windows = append(out.Windows, w)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("broker producer state: %w", err)
	}
	for _, w := range windows {
		out.Windows = append(out.Windows, *w)
	}
	sort.Slice(out.Windows, func(i, j int) bool {
		a, b := out.Windows[i], out.Windows[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Part != b.Part {
			return a.Part < b.Part
		}
		return a.PID < b.PID
	})
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return writeFileSync(path, b)
}

// parsePartDir splits kfake's partition directory name, url.PathEscape(topic)
// + "-" + partition (persist.go partDir).
func parsePartDir(name string) (topic string, part int32, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return "", 0, false
	}
	topic, err = url.PathUnescape(name[:i])
	if err != nil {
		return "", 0, false
	}
	return topic, int32(p), true
}

// eachLogBatch calls fn for every record batch of the partition directory's
// segments in offset order. Segments are raw RecordBatch wire bytes, one after
// another; like kfake's loadSegmentBatches, reading stops at the first torn or
// corrupt batch (kfake truncates it away on load).
func eachLogBatch(pdir string, fn func(*kmsg.RecordBatch)) error {
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return fmt.Errorf("broker data %s: %w", pdir, err)
	}
	var bases []int64
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name(), ".dat"); ok {
			if n, err := strconv.ParseInt(base, 10, 64); err == nil {
				bases = append(bases, n)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for _, base := range bases {
		path := filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat")
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("broker segment %s: %w", path, err)
		}
		for pos := 0; pos+12 <= len(raw); {
			n := int(int32(binary.BigEndian.Uint32(raw[pos+8 : pos+12])))
			if n < 0 || n > 1<<30 || pos+12+n > len(raw) {
				break
			}
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw[pos : pos+12+n]); err != nil {
				break
			}
			fn(&b)
			pos += 12 + n
		}
	}
	return nil
}

// ensurePIDs appends an "init" entry to kfake's pids.log for every producer id
// of epochs that the log does not know yet. The framing is kfake's
// (persist.go writeEntry): length (u32 LE, version+data), CRC-32C of
// version+data (u32 LE), version 1 (u16 LE), JSON of pidLogEntry.
func ensurePIDs(path string, epochs map[int64]int16) error {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("broker producer ids %s: %w", path, err)
	}
	known := map[int64]bool{}
	valid := 0
	for pos := 0; pos+10 <= len(raw); {
		n := int(binary.LittleEndian.Uint32(raw[pos : pos+4]))
		if n < 2 || pos+8+n > len(raw) {
			break
		}
		body := raw[pos+8 : pos+8+n]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(raw[pos+4:pos+8]) {
			break
		}
		var e struct {
			PID int64 `json:"pid"`
		}
		if json.Unmarshal(body[2:], &e) == nil {
			known[e.PID] = true
		}
		pos += 8 + n
		valid = pos
	}
	var add []byte
	for pid, epoch := range epochs {
		if known[pid] {
			continue
		}
		data, err := json.Marshal(struct {
			Type  string `json:"type"`
			PID   int64  `json:"pid"`
			Epoch int16  `json:"epoch"`
		}{"init", pid, epoch})
		if err != nil {
			return err
		}
		e := make([]byte, 10+len(data))
		binary.LittleEndian.PutUint32(e[0:4], uint32(2+len(data)))
		binary.LittleEndian.PutUint16(e[8:10], 1)
		copy(e[10:], data)
		binary.LittleEndian.PutUint32(e[4:8], crc32.Checksum(e[8:], castagnoli))
		add = append(add, e...)
	}
	if len(add) == 0 {
		return nil
	}
	// A torn tail would hide the appended entries from kfake's reader,
	// which stops at the first bad frame: drop it first.
	return writeFileSync(path, append(raw[:valid:valid], add...))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeFileSync replaces path atomically and durably: temporary file, fsync,
// rename.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("broker state %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("broker state %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("broker state %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("broker state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("broker state %s: %w", path, err)
	}
	return nil
}
