package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/metadata/publish"
)

// TestLevel2ReprocessCommand: `gtsm level2 reprocess` publishes the site's
// newest metadata record again, byte for byte, with the request headers
// (an id; --from as unix seconds), on the site's partition; usage errors exit
// 2, a site without metadata exits 1 naming the cause. (The processor's side
// of the request: processor.TestLevel2ReprocessRequest.)
func TestLevel2ReprocessCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"level2", "reprocess"}, 2, "--site is required"},
		{[]string{"level2", "reprocess", "--site", "B004", "--from", "yesterday"}, 2, `--from "yesterday"`},
		{[]string{"level2", "reprocess", "--site", "B004", "extra"}, 2, `unexpected argument "extra"`},
	} {
		code, _, errs := runCmd(t, nil, c.args...)
		if code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errs, c.code, c.err)
		}
	}
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vars := map[string]string{"BOOTSTRAP_SERVERS": st.BootstrapServers, "SCHEMA_REGISTRY_URL": st.RegistryURL}
	if code, _, errs := runCmd(t, vars, "level2", "reprocess", "--site", "B004"); code != 1 || !strings.Contains(errs, "no metadata record") {
		t.Errorf("before any metadata: exit %d, %s", code, errs)
	}
	if code, _, errs := runCmd(t, vars, append([]string{"metadata", "load", "-q"}, metadataFiles(t)...)...); code != 0 {
		t.Fatalf("metadata load: exit %d: %s", code, errs)
	}
	if code, _, errs := runCmd(t, vars, "level2", "reprocess", "--site", "NOPE"); code != 1 || !strings.Contains(errs, "no metadata record") || !strings.Contains(errs, "NOPE") {
		t.Errorf("site without metadata: exit %d, %s", code, errs)
	}
	code, out, errs := runCmd(t, vars, "level2", "reprocess", "--site", "B004", "--from", "2024-03-01T06:00:00")
	if code != 0 || out != "" || !strings.Contains(errs, "reprocess of B004 requested (rows from 2024-03-01T06:00:00Z") {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errs)
	}
	// The topic now holds B004's record twice: as loaded, and as the request.
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers), kgo.ConsumeTopics(publish.DefaultTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 4 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	var loaded, req *kgo.Record
	for _, r := range recs {
		if string(r.Key) != "B004" {
			continue
		}
		if len(r.Headers) == 0 {
			loaded = r
		} else {
			req = r
		}
	}
	if loaded == nil || req == nil {
		t.Fatalf("records on the topic: %d (want B004 loaded and requested)", len(recs))
	}
	if !bytes.Equal(loaded.Value, req.Value) || loaded.Partition != req.Partition || req.Offset <= loaded.Offset {
		t.Errorf("the request is not B004's record published again on its partition after it")
	}
	h := map[string]string{}
	for _, x := range req.Headers {
		h[x.Key] = string(x.Value)
	}
	if len(h[publish.HeaderReprocess]) != 16 || h[publish.HeaderReprocessFrom] != "1709272800" || !strings.Contains(errs, "request "+h[publish.HeaderReprocess]) {
		t.Errorf("request headers %v; summary %s", h, errs)
	}
}
