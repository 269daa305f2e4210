package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// EtcdEnv names the etcd binary to start; without it, etcd on PATH (Debian's
// etcd-server package installs /usr/bin/etcd).
const EtcdEnv = "VMATRIX_ETCD"

// etcdStore is an etcd that the apiserver talks to directly: an external one
// under a key prefix of the cluster's own, or a child process of ours.
type etcdStore struct {
	endpoints []string
	prefix    string
	process   *proc.Process // nil for an external etcd
}

func (e *etcdStore) Endpoint() string { return strings.Join(e.endpoints, ",") }
func (e *etcdStore) Prefix() string   { return e.prefix }

// Process is the etcd vmatrix runs for the cluster (nil for an external
// one); the control plane keeps it up as it does its components, and tells
// the store of a restart through Restarted.
func (e *etcdStore) Process() *proc.Process    { return e.process }
func (e *etcdStore) Restarted(p *proc.Process) { e.process = p }

func (e *etcdStore) Stop() error {
	if e.process == nil {
		return nil
	}
	// etcd syncs its WAL on every commit; SIGTERM lets it close the bolt
	// database cleanly so the next start does not have to recover it.
	return e.process.Stop(5 * time.Second)
}

func (b Backend) startEtcd(clusterName, dataDir, socketDir string) (Store, error) {
	endpoints, err := b.etcdEndpoints()
	if err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		if err := b.claim(dataDir, &record{Kind: Etcd}); err != nil {
			return nil, err
		}
		return startEtcdProcess(dataDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := pingEtcd(ctx, endpoints); err != nil {
		return nil, err
	}
	rec := &record{Kind: Etcd, EtcdPrefix: "/" + storageName(clusterName)}
	if err := b.claim(dataDir, rec); err != nil {
		return nil, err
	}
	return &etcdStore{endpoints: endpoints, prefix: rec.EtcdPrefix}, nil
}

func pingEtcd(ctx context.Context, endpoints []string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: connectTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd backend: connecting to %s: %w", strings.Join(endpoints, ","), err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, "/", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd backend: connecting to %s: %w", strings.Join(endpoints, ","), err)
	}
	return nil
}

func (b Backend) deleteEtcdPrefix(ctx context.Context, prefix string) error {
	endpoints, err := b.etcdEndpoints()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*connectTimeout)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: connectTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd backend: connecting to %s: %w", strings.Join(endpoints, ","), err)
	}
	defer c.Close()
	// The trailing slash keeps /vmatrix_a_1 from taking /vmatrix_a_10 along.
	if _, err := c.Delete(ctx, prefix+"/", clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("etcd backend: deleting the keys under %s: %w", prefix, err)
	}
	return nil
}

// EtcdBinary finds the etcd binary: $VMATRIX_ETCD, else etcd on PATH.
func EtcdBinary() (string, error) {
	if p := os.Getenv(EtcdEnv); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("etcd backend: no etcd binary: install Debian's etcd-server package, set %s, or give an etcd endpoint as DSN", EtcdEnv)
	}
	return p, nil
}

// startEtcdProcess starts a one-member etcd with its data in dataDir/etcd on
// free loopback ports, and waits until it is healthy.
func startEtcdProcess(dataDir string) (Store, error) {
	bin, err := EtcdBinary()
	if err != nil {
		return nil, err
	}
	// Component logs go next to the control plane's when there is such a
	// folder (controlplane's Dir/logs beside Dir/data).
	logDir := filepath.Join(filepath.Dir(dataDir), "logs")
	if fi, err := os.Stat(logDir); err != nil || !fi.IsDir() {
		logDir = dataDir
	}
	// A free port may be taken between our probe and etcd's bind: try again.
	for attempt := 1; ; attempt++ {
		s, err := tryEtcdProcess(bin, dataDir, filepath.Join(logDir, "etcd.log"))
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return s, err
		}
	}
}

var errPortTaken = errors.New("port taken")

func tryEtcdProcess(bin, dataDir, logPath string) (Store, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{
		"--name=vmatrix",
		"--data-dir=" + filepath.Join(dataDir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=vmatrix=" + peer,
		"--logger=zap",
		"--log-outputs=stderr",
	}
	p, err := proc.Start("etcd", bin, args, os.Environ(), logPath)
	if err != nil {
		return nil, err
	}
	s := &etcdStore{endpoints: []string{client}, process: p}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if done, exitErr := p.Exited(); done {
			tail := p.Tail(10)
			if strings.Contains(tail, "address already in use") {
				return nil, errPortTaken
			}
			return nil, fmt.Errorf("etcd exited (%v); end of %s:\n%s", exitErr, logPath, tail)
		}
		if etcdHealthy(client) {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("etcd did not become healthy in 30s; end of %s:\n%s", logPath, p.Tail(10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func etcdHealthy(client string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(client + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"true"`)
}

// freePorts returns n distinct free loopback ports, holding each open until
// all are found so that the kernel does not hand out the same one twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
