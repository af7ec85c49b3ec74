// Package teststack starts the embedded Kafka broker and schema registry for
// tests of the packages above record/ (testutil stays importable by bottle/
// and record/ tests, which this package would make an import cycle).
package teststack

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/earthscope/gtsm-stream/embedded"
	"github.com/earthscope/gtsm-stream/registry"
)

// KafkaStack starts the embedded broker and registry on loopback ports,
// registers the project's schemas for topic, creates topic with partitions,
// and lowers the broker's minimum group session to 500 ms (tests run
// processors with 1 s sessions, so a SIGKILLed member is noticed quickly).
// The caller closes the stack.
func KafkaStack(t testing.TB, topic string, partitions int) (*embedded.Stack, *registry.Serde) {
	t.Helper()
	st, err := embedded.Start(embedded.Config{KafkaAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(err error) {
		st.Close()
		t.Fatal(err)
	}
	ctx := context.Background()
	rc, err := registry.New(registry.Config{URL: st.RegistryURL})
	if err != nil {
		fail(err)
	}
	k, v, err := registry.LoadSchemas(ctx, rc, "", topic)
	if err != nil {
		fail(err)
	}
	serde, err := registry.NewSerde(ctx, rc, topic, k, v)
	if err != nil {
		fail(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.BootstrapServers))
	if err != nil {
		fail(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(partitions), 1, nil, topic); err != nil {
		fail(err)
	}
	v500 := "500"
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "group.min.session.timeout.ms", Value: &v500}}); err != nil {
		fail(err)
	}
	return st, serde
}
