package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/earthscope/gtsm-stream/embedded"
)

const brokerHelp = `Runs the embedded Kafka-protocol broker (kfake) and Confluent-compatible schema
registry (srfake) until Ctrl-C, for development against the real CLIs. Topics,
committed offsets and registered schemas persist in the data directory.

Examples:
  gtsm broker                                   # 127.0.0.1:19092 and http://127.0.0.1:8081, data in .gtsm/
  gtsm broker --kafka-addr 127.0.0.1:29092 --registry-addr 127.0.0.1:28081
  kcat -b 127.0.0.1:19092 -L                    # then, in another terminal
  BOOTSTRAP_SERVERS=127.0.0.1:19092 gtsm produce testdata/hour`

// brokerFlags are shared by "broker" and "demo".
type brokerFlags struct {
	kafkaAddr, registryAddr, dataDir string
	partitions                       int
	syncWrites                       bool
}

func (b *brokerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&b.kafkaAddr, "kafka-addr", embedded.DefaultKafkaAddr, "address of the embedded Kafka broker (127.0.0.1 only)")
	fs.StringVar(&b.registryAddr, "registry-addr", embedded.DefaultRegistryAddr, "address of the embedded schema registry")
	fs.StringVar(&b.dataDir, "data", ".gtsm", "data directory (broker log, schemas, DuckDB file)")
	fs.IntVar(&b.partitions, "partitions", 3, "partitions of auto-created topics")
	fs.BoolVar(&b.syncWrites, "sync-writes", false, "fsync every produced batch before acknowledging it (survives power loss too, not only kill -9; slower produce: docs/performance.md)")
}

func (b *brokerFlags) start() (*embedded.Stack, error) {
	return embedded.Start(embedded.Config{
		KafkaAddr:    b.kafkaAddr,
		RegistryAddr: b.registryAddr,
		DataDir:      filepath.Join(b.dataDir, "broker"),
		Partitions:   b.partitions,
		SyncWrites:   b.syncWrites,
	})
}

func runBroker(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "broker", "broker [flags]", brokerHelp)
	var bf brokerFlags
	bf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	st, err := bf.start()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "broker   %s   (BOOTSTRAP_SERVERS)\nregistry %s   (SCHEMA_REGISTRY_URL)\ndata     %s\nCtrl-C to stop.\n",
		st.BootstrapServers, st.RegistryURL, bf.dataDir)
	env.log.Info("broker running", "kafka", st.BootstrapServers, "registry", st.RegistryURL, "data", bf.dataDir)
	<-ctx.Done()
	env.log.Info("stopping broker and registry")
	return st.Close()
}
