package producer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// selfSigned returns a server TLS config for 127.0.0.1 and the path of its
// certificate as a PEM CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gtsm test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

// A cluster that wants TLS and SASL: each mechanism the CLI offers
// delivers; a wrong password or an unknown CA is a clear error.
func TestProduceTLSAndSASL(t *testing.T) {
	reg := startStack(t) // for its registry
	serverTLS, ca := selfSigned(t)
	hour := fixture(t, "hour")
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(m, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.EnableSASL(),
				kfake.Superuser(m, "gtsm", "s3cret"), kfake.TLS(serverTLS))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			opt := stackOptions(reg, 2)
			opt.Kafka = Kafka{Brokers: c.ListenAddrs(), CAFile: ca, SASLMechanism: m, Username: "gtsm", Password: "s3cret"}
			sum, err := Run(context.Background(), []string{hour}, opt)
			if err != nil || sum.Records != 3600 {
				t.Fatalf("%s over TLS: %d records, %v", m, sum.Records, err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opt.Kafka.Password = "wrong"
			_, err = Run(ctx, []string{hour}, opt)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "sasl") {
				t.Fatalf("%s with a wrong password: %v, want a SASL error", m, err)
			}
			t.Log(err)
		})
	}
	t.Run("unknown CA", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.TLS(serverTLS))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		opt := stackOptions(reg, 2)
		opt.Kafka = Kafka{Brokers: c.ListenAddrs(), TLS: true} // system roots do not know our CA
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = Run(ctx, []string{hour}, opt)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("TLS with an unknown CA: %v", err)
		}
	})
}
