package main

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/internal/state"
)

// TestStateAndListenersArePrivate: a cluster's folders are its owner's
// alone, its keys, kubeconfigs and records readable by the owner only;
// every TCP listener of the cluster and of the embedded host is on the
// loopback address; and the apiservers answer no anonymous request.
func TestStateAndListenersArePrivate(t *testing.T) {
	c := newCLI(t)
	c.mustRun("create", "private", "--version", "1.37")
	defer c.mustRun("delete", "private")

	err := filepath.WalkDir(c.stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode, name := info.Mode().Perm(), d.Name()
		switch {
		case path == c.stateDir: // the test's, not vmatrix's
		case d.IsDir() && mode != 0o700:
			t.Errorf("folder %s has mode %o, want 700", path, mode)
		case !d.IsDir() && (strings.HasSuffix(name, ".key") || name == "kubeconfig" || name == "cluster.json") && mode != 0o600:
			t.Errorf("%s has mode %o, want 600", path, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var pids []int
	var ports []int
	for _, dir := range []string{filepath.Join(c.stateDir, "clusters", "private"), filepath.Join(c.stateDir, "host")} {
		rec, err := state.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, rec.Supervisor)
		for _, pid := range rec.PIDs {
			pids = append(pids, pid)
		}
		ports = append(ports, rec.Port)
	}
	listeners := tcpListeners(t, pids)
	if len(listeners) < 4 {
		t.Errorf("found %d listeners, want at least the two apiservers and the two kubelet APIs: %v", len(listeners), listeners)
	}
	t.Logf("listeners: %v", listeners)
	for _, l := range listeners {
		if ip := net.ParseIP(l.ip); ip == nil || !ip.IsLoopback() {
			t.Errorf("process %d listens on %s:%d, not on the loopback address", l.pid, l.ip, l.port)
		}
	}
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, port := range ports {
		resp, err := anon.Get(fmt.Sprintf("https://127.0.0.1:%d/version", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an anonymous GET /version on port %d: %s, want 401", port, resp.Status)
		}
	}
}

type listener struct {
	pid  int
	ip   string
	port int
}

// tcpListeners lists the listening TCP sockets of pids, from /proc.
func tcpListeners(t *testing.T, pids []int) []listener {
	t.Helper()
	owner := map[string]int{} // socket inode -> pid
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") {
				owner[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = pid
			}
		}
	}
	var out []listener
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			pid, ok := owner[f[9]]
			if !ok {
				continue
			}
			addr := strings.Split(f[1], ":")
			raw, _ := hex.DecodeString(addr[0])
			// /proc/net/tcp* hold each 32-bit word of the address in host (little-endian) order.
			for i := 0; i+4 <= len(raw); i += 4 {
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			port, _ := strconv.ParseInt(addr[1], 16, 32)
			out = append(out, listener{pid: pid, ip: net.IP(raw).String(), port: int(port)})
		}
	}
	return out
}
