package processor

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramClient adapts franz-go's SCRAM implementation (already a dependency,
// used by the producer) to sarama's step-wise SCRAMClient interface.
type scramClient struct {
	sha512 bool
	auth   scram.Auth
	sess   sasl.Session
	done   bool
}

func newSCRAM(mechanism string) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramClient{sha512: mechanism == sarama.SASLTypeSCRAMSHA512} }
}

func (c *scramClient) Begin(user, password, authzID string) error {
	c.auth = scram.Auth{User: user, Pass: password, Zid: authzID}
	return nil
}

// Step returns the client-first message for the empty challenge, then the
// answer to each server message.
func (c *scramClient) Step(challenge string) (string, error) {
	if c.sess == nil {
		m := c.auth.AsSha256Mechanism()
		if c.sha512 {
			m = c.auth.AsSha512Mechanism()
		}
		sess, first, err := m.Authenticate(context.Background(), "")
		if err != nil {
			return "", err
		}
		c.sess = sess
		return string(first), nil
	}
	done, resp, err := c.sess.Challenge([]byte(challenge))
	if err != nil {
		return "", err
	}
	c.done = done
	return string(resp), nil
}

func (c *scramClient) Done() bool { return c.done }
