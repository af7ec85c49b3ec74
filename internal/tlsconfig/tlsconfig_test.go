package tlsconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFromFilesErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		ca, cert, key, want string
	}{
		{"missing CA", filepath.Join(dir, "none.pem"), "", "", "Kafka TLS CA: open "},
		{"CA without PEM", notPEM, "", "", "Kafka TLS CA " + notPEM + ": no PEM certificates in it"},
		{"cert without key", "", notPEM, "", "Kafka TLS: give both a client certificate and its key, or neither"},
		{"bad key pair", "", notPEM, notPEM, "Kafka TLS client certificate: "},
	}
	for _, tc := range tests {
		_, err := FromFiles("Kafka TLS", tc.ca, tc.cert, tc.key, false)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want prefix %q", tc.name, err, tc.want)
		}
	}
	cfg, err := FromFiles("Kafka TLS", "", "", "", true)
	if err != nil || !cfg.InsecureSkipVerify || cfg.RootCAs != nil || len(cfg.Certificates) != 0 {
		t.Fatalf("no files, insecure: %+v, %v", cfg, err)
	}
}
