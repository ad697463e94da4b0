package harness

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// localCARoots trusts the local CA of the in-process Caddy (the issuer of
// tls internal), read from its storage.
func localCARoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, err := readRoots(localCAFile(t))
	if err != nil {
		t.Fatalf("Caddy's local CA: %v (load a config with an https site and call WaitForCert first)", err)
	}
	return pool
}

func localCAFile(t testing.TB) string {
	return filepath.Join(stateDir(t), "data", "pki", "authorities", "local", "root.crt")
}

func readRoots(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no certificate", file)
	}
	return pool, nil
}

// WaitForCert waits until the https site ({$HTTPS_SITE}, tls internal)
// serves a certificate of Caddy's local CA, which Caddy issues in the
// background after a load, and returns a TLS config that trusts that CA
// and nothing else.
func (c *Caddy) WaitForCert() *tls.Config {
	c.t.Helper()
	var cfg *tls.Config
	Eventually(c.t, "the https site serves a certificate of Caddy's local CA", func() (bool, string) {
		if cfg == nil {
			pool, err := readRoots(localCAFile(c.t))
			if err != nil {
				return false, err.Error()
			}
			cfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: Guard}, "tcp", fmt.Sprintf("localhost:%d", c.HTTPSPort), cfg)
		if err != nil {
			return false, err.Error()
		}
		_ = conn.Close()
		return true, ""
	})
	return cfg
}

// localTLS trusts only the local CA of the in-process Caddy.
func localTLS(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: localCARoots(t), MinVersion: tls.VersionTLS12}
}
