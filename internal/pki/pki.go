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
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
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

// KubeletClientCert is what the apiserver presents to the kubelet API of its
// nodes (logs, exec, port-forward); KubeletServingCert is what that kubelet
// API serves with. A virtual cluster's kubelet API is its syncer's listener,
// which accepts only KubeletClientName signed by the cluster CA.
func (f Files) KubeletClientCert() string  { return f.path("kubelet-client.crt") }
func (f Files) KubeletClientKey() string   { return f.path("kubelet-client.key") }
func (f Files) KubeletServingCert() string { return f.path("kubelet.crt") }
func (f Files) KubeletServingKey() string  { return f.path("kubelet.key") }

// FrontProxyClientName is the common name the apiserver accepts from the aggregation proxy.
const FrontProxyClientName = "front-proxy-client"

// KubeletClientName is the common name of the apiserver's kubelet client certificate.
const KubeletClientName = "kube-apiserver-kubelet-client"

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
	kubeletClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: KubeletClientName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	// The apiserver reaches the kubelet API of its nodes on the loopback
	// address, also in a pod, where the syncer runs beside it.
	kubeletServing := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "vmatrix-kubelet"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
		func() error { return issue(f.KubeletClientCert(), f.KubeletClientKey(), kubeletClient, ca, caKey) },
		func() error { return issue(f.KubeletServingCert(), f.KubeletServingKey(), kubeletServing, ca, caKey) },
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

// ServerTLS is the TLS configuration of a kubelet API listener: it serves
// certFile and answers only a client whose certificate clientCAFile signed
// for the common name clientName (the apiserver's kubelet client), never an
// anonymous one. Streams are upgraded HTTP/1.1 connections, so it offers no
// HTTP/2.
func ServerTLS(certFile, keyFile, clientCAFile, clientName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	caPEM, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in client CA %s", clientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != clientName {
				return errors.New("only the apiserver's kubelet client may call the kubelet API")
			}
			return nil
		},
	}, nil
}

// WebhookServing writes a serving certificate for host (an IP address or a
// DNS name), signed by a CA of its own, as dir/tls.crt and dir/tls.key (the
// names controller-runtime's webhook server reads), and returns the CA
// certificate in PEM for the webhook configurations' caBundle.
func WebhookServing(dir, host string) ([]byte, error) {
	ca, caKey, err := newCA("vmatrix-webhook-ca")
	if err != nil {
		return nil, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: host},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		serving.IPAddresses = []net.IP{ip}
	} else {
		serving.DNSNames = []string{host}
	}
	if err := issue(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), serving, ca, caKey); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), nil
}
