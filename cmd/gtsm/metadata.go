package main

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/earthscope/gtsm-stream/metadata"
	"github.com/earthscope/gtsm-stream/metadata/publish"
	"github.com/earthscope/gtsm-stream/producer"
	"github.com/earthscope/gtsm-stream/registry"
)

const metadataLoadHelp = `Reads EarthScope station metadata — the network table bsm_metadata.txt and
each station's Level-2 <STA>.README.txt (calibration matrices, barometric
response, tidal constituents, trend models) — and publishes one Avro record per
station (schema gtsm_metadata-value, registered) to the compacted topic
gtsm_metadata, keyed by the plain site name (as goka table keys are; values
Confluent-framed). The processor follows that topic: the newest record of a
site is its metadata; a site whose Level-2 was computed with other metadata is
reprocessed from its stored counts with the new version (gtsm level2 reprocess
-h).

A file named <STA>.README.txt belongs to station STA; every other file is a
network table. A bad file stops the run before anything is sent, with the file
and line of the error, and exit status 1.

The topic is created with cleanup.policy=compact (and 12 partitions; a site's
partition is murmur2(site), where the processor looks it up) unless --no-create; an existing topic
that is not compacted is refused. Loading the same files again publishes
records with the same versions (the version is a hash of the content).

Examples:
  gtsm metadata load --dry-run metadata/testdata/bsm_metadata.txt metadata/testdata/TSM5.README.txt
  gtsm metadata load bsm_metadata.txt *.README.txt
  kcat -C -b localhost:19092 -t gtsm_metadata -e -q -f '%k %S\n'   # site and record size`

// connFlags are the broker, registry, TLS, SASL and -X flags that gtsm produce
// and gtsm metadata load share (the same names and meanings in both).
type connFlags struct {
	brokers string
	kafka   producer.Kafka
	reg     registry.Config
	kp      kafkaPropFlags
}

func (c *connFlags) register(fs *pflag.FlagSet, env *environ) {
	fs.StringVar(&c.brokers, "bootstrap-servers", envOr(env, "BOOTSTRAP_SERVERS", "localhost:19092"), "Kafka bootstrap servers, comma separated (env BOOTSTRAP_SERVERS)")
	fs.StringVar(&c.reg.URL, "registry", envOr(env, "SCHEMA_REGISTRY_URL", "http://localhost:8081"), "schema registry URL (env SCHEMA_REGISTRY_URL)")
	fs.BoolVar(&c.kafka.TLS, "tls", false, "connect to Kafka with TLS (implied by the other --tls-* flags)")
	fs.StringVar(&c.kafka.CAFile, "tls-ca", "", "PEM CA bundle for Kafka (default: system roots)")
	fs.StringVar(&c.kafka.CertFile, "tls-cert", "", "PEM client certificate for Kafka (mutual TLS)")
	fs.StringVar(&c.kafka.KeyFile, "tls-key", "", "PEM client key for Kafka (mutual TLS)")
	fs.BoolVar(&c.kafka.InsecureSkipVerify, "tls-insecure", false, "do not verify the Kafka broker certificate (testing only)")
	fs.StringVar(&c.kafka.SASLMechanism, "sasl-mechanism", "", "Kafka SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.kafka.Username, "sasl-username", "", "Kafka SASL user")
	fs.StringVar(&c.kafka.Password, "sasl-password", "", "Kafka SASL password (prefer env KAFKA_SASL_PASSWORD: flags show in ps)")
	fs.StringVar(&c.reg.Username, "registry-username", "", "schema registry basic-auth user")
	fs.StringVar(&c.reg.Password, "registry-password", "", "schema registry basic-auth password (prefer env SCHEMA_REGISTRY_PASSWORD)")
	fs.StringVar(&c.reg.CAFile, "registry-ca", "", "PEM CA bundle for an https registry")
	fs.BoolVar(&c.reg.InsecureSkipVerify, "registry-insecure", false, "do not verify the registry certificate (testing only)")
	c.kp.register(fs)
}

// resolve applies the environment passwords (after parsing, so that -h never
// prints them as a flag default), the broker list and the Kafka properties.
func (c *connFlags) resolve(env *environ) error {
	c.kafka.Password = cmp.Or(c.kafka.Password, env.getenv("KAFKA_SASL_PASSWORD"))
	c.reg.Password = cmp.Or(c.reg.Password, env.getenv("SCHEMA_REGISTRY_PASSWORD"))
	for _, b := range strings.Split(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.kafka.Brokers = append(c.kafka.Brokers, b)
		}
	}
	props, err := c.kp.props()
	if err != nil {
		return err
	}
	if _, saslSet := props.Sets(); saslSet && c.kafka.SASLMechanism != "" {
		return usageError{"SASL set both by --sasl-* flags and by Kafka properties (-X sasl.*): choose one"}
	}
	if c.kafka.Extra, err = props.Franz(); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

func runMetadataLoad(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "metadata load", "metadata load [flags] FILE...", metadataLoadHelp)
	var (
		c      connFlags
		o      publish.Options
		dryRun bool
		quiet  bool
		parts  int
		repl   int
	)
	c.register(fs, env)
	fs.StringVar(&o.Topic, "topic", publish.DefaultTopic, "Kafka topic (compacted)")
	fs.IntVar(&parts, "partitions", producer.DefaultPartitions, "partitions of the topic if this run creates it (keep equal to gtsm_etl's for a co-partitioned join)")
	fs.IntVar(&repl, "replication-factor", -1, "replication factor if this run creates the topic; -1 = the broker's default")
	fs.BoolVar(&o.NoCreate, "no-create", false, "fail if the topic does not exist instead of creating it")
	fs.BoolVar(&dryRun, "dry-run", false, "print one JSON line per station record to stdout; no broker or registry needed")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no FILE given (bsm_metadata.txt and <STA>.README.txt files); see gtsm metadata load -h"}
	}
	if parts < 1 || parts > 1<<20 {
		return usageError{fmt.Sprintf("--partitions %d: want at least 1", parts)}
	}
	if repl == 0 || repl < -1 || repl > 32767 {
		return usageError{fmt.Sprintf("--replication-factor %d: want -1 (broker default) or a positive count", repl)}
	}
	stations, err := metadata.LoadFiles(fs.Args())
	if err != nil {
		return err
	}
	if dryRun {
		return publish.DryRun(env.stdout, stations, o.Topic)
	}
	if err := c.resolve(env); err != nil {
		return err
	}
	o.Kafka, o.Registry = c.kafka, c.reg
	o.Partitions, o.Replication = int32(parts), int16(repl)
	sum, err := publish.Publish(ctx, stations, o)
	if err != nil {
		return err
	}
	if !quiet {
		how := "existing"
		if sum.Created {
			how = "created by this run, cleanup.policy=compact"
		}
		fmt.Fprintf(env.stderr, "topic %s: %d partitions, %s; keys the plain site name, value schema id %d\n", sum.Topic, sum.Partitions, how, sum.ValueSchemaID)
		for _, r := range sum.Records {
			fmt.Fprintf(env.stderr, "%s version %s partition %d offset %d\n", r.Site, r.Version, r.Partition, r.Offset)
		}
		fmt.Fprintf(env.stderr, "%d station record(s) delivered (acknowledged) to topic %s\n", len(sum.Records), sum.Topic)
	}
	return nil
}
