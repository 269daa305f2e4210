// Package pki generates the certificates and keys of one control plane.
//
// Keys are ECDSA P-256: generating one takes well under a millisecond, where an
// RSA-2048 key takes tens of milliseconds, and every Kubernetes component of the
// supported versions accepts them (service-account tokens are then signed ES256).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths of a control plane's PKI, all inside one directory.
type Files struct {
	Dir string
}

func (f Files) path(name string) string { return filepath.Join(f.Dir, name) }

// CACert is the cluster CA: it signs the serving and client certificates and is the
// controller manager's root CA, so it must be a real CA certificate.
func (f Files) CACert() string            { return f.path("ca.crt") }
func (f Files) CAKey() string             { return f.path("ca.key") }
func (f Files) ServingCert() string       { return f.path("apiserver.crt") }
func (f Files) ServingKey() string        { return f.path("apiserver.key") }
func (f Files) AdminCert() string         { return f.path("admin.crt") }
func (f Files) AdminKey() string          { return f.path("admin.key") }
func (f Files) ServiceAccountKey() string { return f.path("sa.key") }
func (f Files) ServiceAccountPub() string { return f.path("sa.pub") }
func (f Files) FrontProxyCACert() string  { return f.path("front-proxy-ca.crt") }
func (f Files) FrontProxyClientCert() string {
	return f.path("front-proxy-client.crt")
}
func (f Files) FrontProxyClientKey() string { return f.path("front-proxy-client.key") }

// FrontProxyClientName is the common name the apiserver accepts from the aggregation proxy.
const FrontProxyClientName = "front-proxy-client"

// Generate writes a fresh PKI into dir. The serving certificate is valid for the
// loopback addresses, "localhost", the in-cluster service names and extraSANs
// (IP addresses or DNS names).
func Generate(dir string, extraSANs ...string) (Files, error) {
	f := Files{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	ca, caKey, err := newCA("vmatrix-ca")
	if err != nil {
		return f, err
	}
	fpCA, fpKey, err := newCA("vmatrix-front-proxy-ca")
	if err != nil {
		return f, err
	}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, s := range extraSANs {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else if s != "" {
			dns = append(dns, s)
		}
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "vmatrix-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	fpClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: FrontProxyClientName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	steps := []func() error{
		func() error { return writeCert(f.CACert(), ca.Raw) },
		func() error { return writeKey(f.CAKey(), caKey) },
		func() error { return issue(f.ServingCert(), f.ServingKey(), serving, ca, caKey) },
		func() error { return issue(f.AdminCert(), f.AdminKey(), admin, ca, caKey) },
		func() error { return writeCert(f.FrontProxyCACert(), fpCA.Raw) },
		func() error { return issue(f.FrontProxyClientCert(), f.FrontProxyClientKey(), fpClient, fpCA, fpKey) },
		func() error { return writeKey(f.ServiceAccountKey(), saKey) },
		func() error { return writePublic(f.ServiceAccountPub(), &saKey.PublicKey) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return f, fmt.Errorf("writing PKI in %s: %w", dir, err)
		}
	}
	return f, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func validity(c *x509.Certificate) {
	// Backdated so a clock a little behind on another process does not reject it.
	c.NotBefore = time.Now().Add(-time.Hour)
	c.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	c.SerialNumber = serial()
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	validity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(certPath, keyPath string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	validity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeCert(certPath, der); err != nil {
		return err
	}
	return writeKey(keyPath, key)
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writePublic(path string, pub *ecdsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}
