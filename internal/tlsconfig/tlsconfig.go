// Package tlsconfig builds a client TLS configuration from PEM files, the way
// every gtsm client takes it (Kafka for produce and process, the schema
// registry): a CA bundle, an optional client certificate and key, and an
// explicit opt-out of verification for testing.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// FromFiles returns the client configuration. what names the connection in
// errors ("Kafka TLS", "schema registry TLS"). An empty caFile keeps the
// system roots; certFile and keyFile go together (both or neither).
func FromFiles(what, caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s CA: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s CA %s: no PEM certificates in it", what, caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New(what + ": give both a client certificate and its key, or neither")
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s client certificate: %w", what, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}
