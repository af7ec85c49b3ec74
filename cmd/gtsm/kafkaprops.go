package main

import (
	"github.com/spf13/pflag"

	"github.com/earthscope/gtsm-stream/kafkaprops"
)

// kafkaPropFlags are -X key=value (repeatable) and --kafka-properties FILE,
// Kafka client properties as kcat and librdkafka take them, for produce and
// process. The file is read first; -X wins over it, and both win over the
// dedicated flags (--compression, --linger, ...).
type kafkaPropFlags struct {
	x    kafkaprops.Props
	file string
}

func (k *kafkaPropFlags) register(fs *pflag.FlagSet) {
	fs.VarP(&k.x, "kafka-prop", "X", "Kafka client property key=value, librdkafka names (repeatable; wins over the dedicated flags); docs/cli.md lists them")
	fs.StringVar(&k.file, "kafka-properties", "", "Java-style properties file of Kafka client properties (as kcat -F); -X wins over it")
}

// props returns the file's properties overridden by -X.
func (k *kafkaPropFlags) props() (*kafkaprops.Props, error) {
	file := &kafkaprops.Props{}
	if k.file != "" {
		var err error
		if file, err = kafkaprops.ReadFile(k.file); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	return file.Merge(&k.x), nil
}
