package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// startBroker runs "gtsm broker" in-process on free ports and returns the
// addresses it printed, and a stop function that returns its exit code.
func startBroker(t *testing.T, dir string) (kafka, registry string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb strings.Builder
	env := &environ{stdin: strings.NewReader(""), stdout: pw, stderr: &errb, getenv: func(string) string { return "" }}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, env, []string{"broker", "--kafka-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0", "--data", dir})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "broker":
			kafka = f[1]
		case len(f) >= 2 && f[0] == "registry":
			registry = f[1]
		}
		if strings.HasPrefix(sc.Text(), "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if kafka == "" || registry == "" {
		cancel()
		t.Fatalf("broker printed no addresses; exit %d, stderr %s", <-code, errb.String())
	}
	return kafka, registry, func() int { cancel(); return <-code }
}

func TestBrokerCommandServesKafkaAndRegistry(t *testing.T) {
	kafka, registry, stop := startBroker(t, t.TempDir())
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "probe", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", kafka, err)
	}
	cl.Close()
	resp, err := http.Get(registry + "/subjects")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("GET /subjects = %d %s, want 200 []", resp.StatusCode, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("broker exit code %d after Ctrl-C, want 0", code)
	}
}

func TestBrokerRejectsArguments(t *testing.T) {
	var out, errb strings.Builder
	env := &environ{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(context.Background(), env, []string{"broker", "extra"}); code != 2 {
		t.Fatalf("exit %d, want 2 (usage); stderr %s", code, errb.String())
	}
}
