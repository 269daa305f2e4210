package framework_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/syncer"
)

// kubeletPorts are the kubelet API listeners the tests saw (the syncers' and
// the simulated host kubelet's): the teardown check makes sure they are closed.
var (
	kubeletPortsMu sync.Mutex
	kubeletPorts   []int
)

func noteKubeletPort(p int32) {
	kubeletPortsMu.Lock()
	kubeletPorts = append(kubeletPorts, int(p))
	kubeletPortsMu.Unlock()
}

const twoContainers = `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: credentials}
stringData: {password: s3cret}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        env:
        - {name: GREETING, value: hello}
        - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: credentials, key: password}}}
      - {name: side, image: registry.example/side:1}
`

// runWeb runs the two-container Deployment "web" in a new namespace until it
// is Available, and returns the namespace and its pod.
func runWeb(t *testing.T, vc *framework.VirtualCluster, prefix string) (string, corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	ns, err := vc.NewNamespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vc.DeleteNamespace(context.Background(), ns) })
	if err := vc.ApplyIn(ctx, ns, twoContainers); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatal(err)
	}
	pods, err := vc.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of web: %v, %v", pods, err)
	}
	return ns, pods.Items[0]
}

// TestLookInsidePods is what a person does when a spec fails: kubectl logs,
// exec and port-forward on a virtual pod, and the same through the Go API.
func TestLookInsidePods(t *testing.T) {
	ctx := context.Background()
	hostDir := filepath.Dir(framework.HostKubeconfigPath(env))
	for _, vc := range clusters {
		t.Run(vc.Version().MinorString(), func(t *testing.T) {
			ns, pod := runWeb(t, vc, "look")
			node, err := vc.Client().CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			noteKubeletPort(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
			hostKubelet, _ := strconv.Atoi(kubectl(t, framework.HostKubeconfigPath(env), "get", "node", pod.Spec.NodeName, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"))
			noteKubeletPort(int32(hostKubelet))
			hostPod := syncer.HostName(pod.Name, ns, vc.Name())
			hostNS := syncer.DefaultHostNamespace(vc.Name())
			logFile := host.ContainerLogPath(hostDir, hostNS, hostPod, "app")

			// Logs: what the host pod's log holds, with the usual options.
			full := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, "deploy/web", "-c", "app")
			onHost := kubectl(t, framework.HostKubeconfigPath(env), "logs", "-n", hostNS, hostPod, "-c", "app")
			if full != onHost || !strings.Contains(full, "simulated container app (image registry.example/app:1)") {
				t.Fatalf("kubectl logs deploy/web -c app:\n%s\nthe host pod's log:\n%s", full, onHost)
			}
			lines := strings.Split(strings.TrimSuffix(full, "\n"), "\n")
			if len(lines) < 3 {
				t.Fatalf("a Ready container's log has %d lines, want its story (scheduled, started, ready):\n%s", len(lines), full)
			}
			tail := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "-c", "app", "--tail=2")
			if want := strings.Join(lines[len(lines)-2:], "\n") + "\n"; tail != want {
				t.Errorf("--tail=2 gave %q, want %q", tail, want)
			}
			if side := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "-c", "side"); !strings.Contains(side, "container side") || strings.Contains(side, "container app") {
				t.Errorf("-c side gave:\n%s", side)
			}
			stamped := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "-c", "app", "--timestamps")
			if !regexp.MustCompile(`(?m)\A(\d{4}-\d\d-\d\dT\S+Z .+\n)+\z`).MatchString(stamped) {
				t.Errorf("--timestamps gave:\n%s", stamped)
			}
			all := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "--all-containers")
			if !strings.Contains(all, "container app") || !strings.Contains(all, "container side") {
				t.Errorf("--all-containers gave:\n%s", all)
			}
			if out, err := kubectlErr(vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "-c", "app", "--previous"); err == nil {
				t.Errorf("--previous of a container that never restarted succeeded: %s", out)
			}
			followLogs(t, vc.KubeconfigPath(), ns, pod.Name, logFile)

			// The Go API gives the same.
			stream, err := vc.PodLogs(ctx, ns, pod.Name, &corev1.PodLogOptions{Container: "app"})
			if err != nil {
				t.Fatal(err)
			}
			viaAPI, _ := io.ReadAll(stream)
			stream.Close()
			if now := kubectl(t, vc.KubeconfigPath(), "logs", "-n", ns, pod.Name, "-c", "app"); string(viaAPI) != now {
				t.Errorf("PodLogs gave:\n%s\nkubectl logs:\n%s", viaAPI, now)
			}

			// Exec: both streams, the exit code, the pod's own hostname (its
			// virtual name, as in a real container), and values from a
			// ConfigMap and a Secret.
			cmd := exec.Command("kubectl", "--kubeconfig", vc.KubeconfigPath(), "exec", "-n", ns, pod.Name, "-c", "app", "--",
				"sh", "-c", "echo out; echo err >&2; echo $GREETING; echo $HOSTNAME; echo $COLOR $PASSWORD; exit 3")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 {
				t.Errorf("kubectl exec ... exit 3 ended with %v (stderr %q)", err, stderr.String())
			}
			if stdout.String() != "out\nhello\n"+pod.Name+"\nblue s3cret\n" || !strings.Contains(stderr.String(), "err\n") {
				t.Errorf("kubectl exec: stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			res, err := vc.Exec(ctx, ns, pod.Name, "app", "sh", "-c", "echo out; echo err >&2; exit 3")
			if err != nil || res != (framework.ExecResult{Stdout: "out\n", Stderr: "err\n", ExitCode: 3}) {
				t.Errorf("Exec: %+v, %v", res, err)
			}
			if out, err := kubectlIn("hello from stdin", vc.KubeconfigPath(), "exec", "-i", "-n", ns, pod.Name, "-c", "app", "--", "cat"); err != nil || out != "hello from stdin" {
				t.Errorf("kubectl exec -i ... cat: %q, %v", out, err)
			}
			// A command that is not there: exit 127, and stderr says why.
			res, err = vc.Exec(ctx, ns, pod.Name, "app", "no-such-command")
			if err != nil || res.ExitCode != 127 || !strings.Contains(res.Stderr, `"no-such-command": executable file not found`) {
				t.Errorf("Exec of a missing command: %+v, %v", res, err)
			}

			portForward(t, vc.KubeconfigPath(), ns, pod.Name)
		})
	}
}

// followLogs checks that `kubectl logs -f` streams a line written later.
func followLogs(t *testing.T, kubeconfig, ns, pod, logFile string) {
	t.Helper()
	lines := kubectlStream(t, kubeconfig, "logs", "-f", "-n", ns, pod, "-c", "app", "--tail=1")
	if !lines.Scan() {
		t.Fatal("kubectl logs -f printed nothing")
	}
	later := fmt.Sprintf("a line written later %d", time.Now().UnixNano())
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), later)
	f.Close()
	for lines.Scan() {
		if lines.Text() == later {
			return
		}
	}
	t.Fatalf("kubectl logs -f never showed %q", later)
}

// portForward checks that `kubectl port-forward` carries bytes both ways to
// the pod's port, which a simulated pod serves on this machine's loopback.
func portForward(t *testing.T, kubeconfig, ns, pod string) {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	podPort := echo.Addr().(*net.TCPAddr).Port
	lines := kubectlStream(t, kubeconfig, "port-forward", "-n", ns, "pod/"+pod, ":"+strconv.Itoa(podPort))
	local := ""
	for local == "" && lines.Scan() {
		if m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`).FindStringSubmatch(lines.Text()); m != nil {
			local = m[1]
		}
	}
	if local == "" {
		t.Fatal("kubectl port-forward never said where it listens")
	}
	go func() {
		for lines.Scan() {
		}
	}()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+local, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := []byte("ping through the virtual cluster\n")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("port-forward echoed %q, %v", back, err)
	}
}

// kubectlStream runs a kubectl that keeps running (logs -f, port-forward)
// and returns its output line by line; the test's end stops it.
func kubectlStream(t *testing.T, kubeconfig string, args ...string) *bufio.Scanner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return bufio.NewScanner(out)
}

// TestKubeletIsolation: a cluster's kubelet API answers for its own pods
// only, and only to its own apiserver.
func TestKubeletIsolation(t *testing.T) {
	ctx := context.Background()
	a, b := clusters[0], clusters[len(clusters)-1]
	ns, pod := runWeb(t, b, "only-b")
	nodes, err := a.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("nodes of %s: %v, %v", a, nodes, err)
	}
	node := nodes.Items[0].Name

	// Through cluster A's apiserver and kubelet API, with A's own kubelet
	// client certificate: B's pod, a host pod and crafted paths are nobody's.
	aPKI := filepath.Join(filepath.Dir(a.KubeconfigPath()), "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(aPKI, "kubelet-client.crt"), filepath.Join(aPKI, "kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	aNode, _ := a.Client().CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	aPort := aNode.Status.DaemonEndpoints.KubeletEndpoint.Port
	hostNS := syncer.DefaultHostNamespace(b.Name())
	hostPod := syncer.HostName(pod.Name, ns, b.Name())
	for _, path := range []string{
		"/containerLogs/" + ns + "/" + pod.Name + "/app",             // only B has it
		"/containerLogs/" + hostNS + "/" + hostPod + "/app",          // B's host pod, by its host name
		"/containerLogs/kube-system/kube-apiserver/app",              // nothing
		"/containerLogs/" + ns + "/../" + hostNS + "/" + hostPod,     // a crafted path
		"/containerLogs/" + ns + "/" + pod.Name + "%2F..%2F..%2Fapp", // escaped slashes
		"/exec/" + hostNS + "/" + hostPod + "/app?command=id&output=1",
	} {
		code, body := kubeletGet(t, aPort, &cert, path)
		if code != 404 && code != 403 && code != 400 {
			t.Errorf("GET %s on %s's kubelet API: %d %s", path, a, code, body)
		}
	}
	if code, body := kubeletGet(t, aPort, &cert, "/healthz"); code != 200 {
		t.Errorf("/healthz with the right certificate: %d %s", code, body)
	}
	// The same request for B's pod, with B's kubelet client certificate but
	// at A's listener, or with no certificate at B's: refused at TLS.
	bPKI := filepath.Join(filepath.Dir(b.KubeconfigPath()), "pki")
	bCert, err := tls.LoadX509KeyPair(filepath.Join(bPKI, "kubelet-client.crt"), filepath.Join(bPKI, "kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	bNode, _ := b.Client().CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	bPort := bNode.Status.DaemonEndpoints.KubeletEndpoint.Port
	admin, err := tls.LoadX509KeyPair(filepath.Join(bPKI, "admin.crt"), filepath.Join(bPKI, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]*tls.Certificate{"another cluster's certificate": &bCert, "no certificate": nil} {
		if code, body := kubeletGet(t, aPort, c, "/healthz"); code != -1 {
			t.Errorf("%s at %s's kubelet API: %d %s, want refused", what, a, code, body)
		}
	}
	if code, body := kubeletGet(t, bPort, &admin, "/containerLogs/"+ns+"/"+pod.Name+"/app"); code != -1 {
		t.Errorf("the admin certificate (not the kubelet client) at %s's kubelet API: %d %s, want refused", b, code, body)
	}
	if code, body := kubeletGet(t, bPort, &bCert, "/containerLogs/"+ns+"/"+pod.Name+"/app"); code != 200 || !strings.Contains(body, "container app") {
		t.Errorf("%s's own pod at its kubelet API: %d %s", b, code, body)
	}
	// And through A's apiserver, as a user would try it.
	if out, err := kubectlErr(a.KubeconfigPath(), "logs", "-n", ns, pod.Name); err == nil {
		t.Errorf("kubectl logs through %s for a pod only %s has: %s", a, b, out)
	}
}

// kubeletGet calls a kubelet API listener on 127.0.0.1; -1 means the TLS
// handshake or the request was refused.
func kubeletGet(t *testing.T, port int32, cert *tls.Certificate, path string) (int, string) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		return -1, err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path)
	resp, err := io.ReadAll(conn)
	if len(resp) == 0 {
		return -1, fmt.Sprint(err)
	}
	status := strings.SplitN(string(resp), " ", 3)
	if len(status) < 2 {
		return -1, string(resp)
	}
	code, _ := strconv.Atoi(status[1])
	body := string(resp)
	if i := strings.Index(body, "\r\n\r\n"); i >= 0 {
		body = body[i+4:]
	}
	return code, body
}

func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	return testkit.Kubectl(t, kubeconfig, "", args...)
}

func kubectlErr(kubeconfig string, args ...string) (string, error) {
	return testkit.KubectlErr(kubeconfig, "", args...)
}

func kubectlIn(stdin, kubeconfig string, args ...string) (string, error) {
	return testkit.KubectlErr(kubeconfig, stdin, args...)
}
