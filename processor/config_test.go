package processor

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestSASL connects sarama, configured as the processor does, to a broker
// that requires SASL, for each mechanism, with the right and a wrong password.
func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "gtsm", "secret"),
				kfake.SeedTopics(2, "t"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, tc := range []struct {
				pwd string
				ok  bool
			}{{"secret", true}, {"wrong", false}} {
				cfg := Config{Brokers: c.ListenAddrs(), SASLMechanism: mech, SASLUser: "gtsm", SASLPwd: tc.pwd}.withDefaults()
				sc, err := cfg.saramaConfig()
				if err != nil {
					t.Fatal(err)
				}
				sc.Metadata.Retry.Max = 0
				hw, err := HighWatermarks(cfg.Brokers, sc, "t")
				if tc.ok && (err != nil || len(hw) != 2) {
					t.Errorf("password %q: %v, %v", tc.pwd, hw, err)
				}
				if !tc.ok && err == nil {
					t.Errorf("password %q accepted", tc.pwd)
				}
			}
		})
	}
	if _, err := (Config{SASLMechanism: "GSSAPI"}).withDefaults().saramaConfig(); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Errorf("unsupported mechanism: %v", err)
	}
	if _, err := (Config{KafkaVersion: sarama.V2_1_0_0}).withDefaults().saramaConfig(); err != nil {
		t.Error(err)
	}
}
