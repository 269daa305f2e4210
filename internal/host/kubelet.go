package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/vmatrix/vmatrix/internal/pki"
	"github.com/vmatrix/vmatrix/internal/proc"
)

// simulatedKubelet serves the kubelet API of the embedded host's simulated
// nodes, so that `kubectl logs`, `exec`, `attach` and `port-forward` work on
// simulated pods:
//   - a container's log is a file vmatrix writes (ContainerLogPath), one line
//     per step of its life (scheduled, started, ready, terminated), in the
//     CRI log format; anything appended to it is served too, `-f` included;
//   - exec runs the command on this machine, as the user vmatrix runs as, in
//     a scratch folder of the container (ContainerScratchDir) with the
//     container's environment (containerEnv): no image, no isolation;
//   - attach follows the container's log from its end;
//   - port-forward to a pod port P connects to 127.0.0.1:P on this machine.
//
// A terminal (-t) is refused with a clear error: there is no process to give
// it to.
type simulatedKubelet struct {
	dir      string // where container logs and scratch folders live
	client   kubernetes.Interface
	nodes    map[string]string // simulated node name -> its IP
	srv      *http.Server
	port     int
	factory  informers.SharedInformerFactory
	podCache cache.Indexer
	// The host's ConfigMaps and Secrets, which pods' volumes and
	// environments need: looked up here, not asked for with every pod.
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister
	stop       chan struct{}
	events     record.EventBroadcaster
	recorder   record.EventRecorder

	mu   sync.Mutex
	pods map[types.UID]*podRun // the pods it runs
	ips  *ipPool
	runs sync.WaitGroup
}

// objectData reads the ConfigMaps and Secrets of a namespace that a pod
// needs, from the cache, else (the cache can lag a copy its syncer has just
// made) from the host, each once. On the embedded host these are the
// syncer's copies, which a synced pod's references name.
func (k *simulatedKubelet) objectData(namespace string) objectData {
	read := map[string]map[string]string{}
	return func(kind, name string) (map[string]string, bool) {
		key := kind + "/" + name
		if values, ok := read[key]; ok {
			return values, values != nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var values map[string]string
		switch kind {
		case kindConfigMap:
			cm, err := k.configMaps.ConfigMaps(namespace).Get(name)
			if err != nil {
				cm, err = k.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
			}
			if err == nil {
				values = maps.Clone(cm.Data) // a kubelet takes env from Data only
				if values == nil {
					values = map[string]string{}
				}
			}
		case kindSecret:
			secret, err := k.secrets.Secrets(namespace).Get(name)
			if err != nil {
				secret, err = k.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
			}
			if err == nil {
				values = map[string]string{}
				for key, v := range secret.Data {
					values[key] = string(v)
				}
			}
		}
		read[key] = values
		return values, values != nil
	}
}

// startSimulatedKubelet runs the pods bound to the simulated nodes (a node
// name and its IP) and serves their kubelet API on 127.0.0.1.
func startSimulatedKubelet(ctx context.Context, dir string, files pki.Files, client kubernetes.Interface, nodes map[string]string) (*simulatedKubelet, error) {
	tlsConfig, err := pki.ServerTLS(files.KubeletServingCert(), files.KubeletServingKey(), files.CACert(), pki.KubeletClientName)
	if err != nil {
		return nil, err
	}
	k := &simulatedKubelet{dir: dir, client: client, nodes: nodes, stop: make(chan struct{}), pods: map[types.UID]*podRun{}, ips: newIPPool(podCIDR)}
	k.factory = informers.NewSharedInformerFactory(client, 0)
	inf := k.factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.track(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { k.track(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				k.forget(p)
			}
		},
	}); err != nil {
		return nil, err
	}
	k.startEvents()
	k.podCache = inf.GetIndexer()
	k.configMaps = k.factory.Core().V1().ConfigMaps().Lister()
	k.secrets = k.factory.Core().V1().Secrets().Lister()
	k.factory.Start(k.stop)
	for _, synced := range k.factory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			k.Stop()
			return nil, fmt.Errorf("simulated kubelet: filling its caches: %w", context.Cause(ctx))
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.Stop()
		return nil, fmt.Errorf("simulated kubelet: %w", err)
	}
	k.port = ln.Addr().(*net.TCPAddr).Port
	k.srv = &http.Server{Handler: k, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go k.srv.Serve(tls.NewListener(ln, tlsConfig))
	return k, nil
}

// Stop ends the server, its open streams and the pod watch.
func (k *simulatedKubelet) Stop() {
	select {
	case <-k.stop:
		return
	default:
		close(k.stop)
	}
	if k.srv != nil {
		k.srv.Close()
	}
	k.factory.Shutdown()
	k.runs.Wait()
	if k.events != nil {
		k.events.Shutdown()
	}
}

// ContainerLogPath is the log file of a container of a pod of the embedded
// host whose state folder is dir.
func ContainerLogPath(dir, namespace, pod, container string) string {
	return filepath.Join(dir, "pods", namespace+"_"+pod, container+".log")
}

// previousLogPath is the log of a container's run before its restart.
func previousLogPath(current string) string {
	return strings.TrimSuffix(current, ".log") + ".previous.log"
}

// ContainerScratchDir is the folder that commands exec'd in a simulated
// container run in.
func ContainerScratchDir(dir, namespace, pod, container string) string {
	return filepath.Join(dir, "pods", namespace+"_"+pod, container+".scratch")
}

// appendLog appends lines in the CRI log format: "TIME stdout F TEXT".
func appendLog(path string, lines ...string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), l)
	}
	_, err = f.Write(b.Bytes())
	return errors.Join(err, f.Close())
}

func (k *simulatedKubelet) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/healthz" {
		w.Write([]byte("ok"))
		return
	}
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
	verb := parts[0]
	if !(len(parts) == 4 && (verb == "containerLogs" || verb == "exec" || verb == "attach") || len(parts) == 3 && verb == "portForward") {
		http.NotFound(w, req)
		return
	}
	pod, err := k.pod(parts[1], parts[2])
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if verb == "portForward" {
		opts, err := portforward.NewV4Options(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, req, localForwarder{}, pod.Name, string(pod.UID), opts, 4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
		return
	}
	container := parts[3]
	if !hasContainer(pod, container) {
		_, name := virtualNames(pod)
		http.Error(w, fmt.Sprintf("container %s is not valid for pod %s", container, name(pod.Name)), http.StatusNotFound)
		return
	}
	switch verb {
	case "containerLogs":
		k.serveLogs(w, req, pod, container)
	case "exec", "attach":
		opts, err := remotecommand.NewOptions(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := &simulatedContainer{k: k, pod: pod, name: container}
		if verb == "exec" {
			remotecommand.ServeExec(w, req, c, pod.Name, string(pod.UID), container, req.URL.Query()["command"], opts, 4*time.Hour, 30*time.Second, remotecommand.SupportedStreamingProtocols)
		} else {
			remotecommand.ServeAttach(w, req, c, pod.Name, string(pod.UID), container, opts, 4*time.Hour, 30*time.Second, remotecommand.SupportedStreamingProtocols)
		}
	}
}

func (k *simulatedKubelet) pod(namespace, name string) (*corev1.Pod, error) {
	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, fmt.Errorf("pod %q in namespace %q not found", name, namespace)
	}
	obj, ok, err := k.podCache.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, fmt.Errorf("pod %s/%s not found", namespace, name)
	}
	return obj.(*corev1.Pod), nil
}

func hasContainer(p *corev1.Pod, name string) bool {
	return slices.ContainsFunc(podContainers(p), func(c corev1.Container) bool { return c.Name == name })
}

// podContainers is every container of a pod: init, app and ephemeral.
func podContainers(p *corev1.Pod) []corev1.Container {
	all := slices.Concat(p.Spec.InitContainers, p.Spec.Containers)
	for _, ec := range p.Spec.EphemeralContainers {
		all = append(all, corev1.Container(ec.EphemeralContainerCommon))
	}
	return all
}

// serveLogs answers containerLogs with the options of `kubectl logs`.
func (k *simulatedKubelet) serveLogs(w http.ResponseWriter, req *http.Request, pod *corev1.Pod, container string) {
	q := req.URL.Query()
	opts, err := parseLogOptions(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := ContainerLogPath(k.dir, pod.Namespace, pod.Name, container)
	if q.Get("previous") == "true" {
		path = previousLogPath(path)
		if _, err := os.Stat(path); err != nil {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod.Name), http.StatusBadRequest)
			return
		}
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &limitedWriter{w: w, left: opts.limitBytes}
	out.Write(opts.render(data, true))
	if !opts.follow || out.full() || endsRun(data, container) {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	k.follow(req.Context(), path, int64(len(data)), func(more []byte) bool {
		out.Write(opts.render(more, false))
		if flusher != nil {
			flusher.Flush()
		}
		return !out.full() && !endsRun(more, container)
	})
}

// endsRun reports whether log data holds the line that ends a run of the
// container (a log file holds one run: the next starts a new file): as a
// kubelet's, `kubectl logs -f` ends when the container does.
func endsRun(data []byte, container string) bool {
	prefix := []byte(terminatedLine(container))
	for _, line := range bytes.Split(data, []byte("\n")) {
		f := bytes.SplitN(line, []byte(" "), 4) // TIME STREAM TAG TEXT
		if len(f) == 4 && bytes.HasPrefix(f[3], prefix) {
			return true
		}
	}
	return false
}

// follow hands write each whole line appended to a log file past offset,
// until ctx ends, the kubelet stops, the file goes (its pod is gone) or is
// replaced (its container started again) or write says it wants no more.
func (k *simulatedKubelet) follow(ctx context.Context, path string, offset int64, write func([]byte) bool) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.stop:
			return
		case <-tick.C:
		}
		more, err := readFrom(path, offset)
		if err != nil {
			return
		}
		// Only whole lines: a writer may be in the middle of one.
		if i := bytes.LastIndexByte(more, '\n'); i >= 0 {
			more = more[:i+1]
			offset += int64(len(more))
			if !write(more) {
				return
			}
		}
	}
}

// errLogReplaced: the log file is shorter than what was read of it, a new
// run's: the run followed has ended.
var errLogReplaced = errors.New("log file replaced")

func readFrom(path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() < offset {
		return nil, errors.Join(err, errLogReplaced)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// logOptions are the kubelet's containerLogs query options.
type logOptions struct {
	follow, timestamps bool
	tailLines          int64 // -1: all
	since              time.Time
	limitBytes         int64 // 0: no limit
}

func parseLogOptions(q map[string][]string) (logOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o := logOptions{follow: get("follow") == "true", timestamps: get("timestamps") == "true", tailLines: -1}
	var err error
	if v := get("tailLines"); v != "" {
		if o.tailLines, err = strconv.ParseInt(v, 10, 64); err != nil || o.tailLines < 0 {
			return o, fmt.Errorf("tailLines %q: not a count of lines", v)
		}
	}
	if v := get("limitBytes"); v != "" {
		if o.limitBytes, err = strconv.ParseInt(v, 10, 64); err != nil || o.limitBytes <= 0 {
			return o, fmt.Errorf("limitBytes %q: not a positive number", v)
		}
	}
	if v := get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("sinceSeconds %q: not a positive number", v)
		}
		o.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := get("sinceTime"); v != "" {
		if o.since, err = time.Parse(time.RFC3339, v); err != nil {
			return o, fmt.Errorf("sinceTime %q: %w", v, err)
		}
	}
	return o, nil
}

// render turns CRI log lines into what `kubectl logs` shows; tailLines
// applies only to the first part of a followed log.
func (o logOptions) render(data []byte, first bool) []byte {
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// TIME STREAM TAG TEXT
		f := bytes.SplitN(sc.Bytes(), []byte(" "), 4)
		if len(f) < 4 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, string(f[0]))
		if err != nil || !o.since.IsZero() && ts.Before(o.since) {
			continue
		}
		line := append([]byte{}, f[3]...)
		if o.timestamps {
			line = append(append(append([]byte{}, f[0]...), ' '), line...)
		}
		lines = append(lines, append(line, '\n'))
	}
	if first && o.tailLines >= 0 && int64(len(lines)) > o.tailLines {
		lines = lines[int64(len(lines))-o.tailLines:]
	}
	return bytes.Join(lines, nil)
}

// limitedWriter stops after limitBytes, as the kubelet does.
type limitedWriter struct {
	w    io.Writer
	left int64 // 0: no limit
	done bool
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left > 0 {
		if int64(len(p)) >= l.left {
			p, l.done = p[:l.left], true
		}
		l.left -= int64(len(p))
	}
	return l.w.Write(p)
}

func (l *limitedWriter) full() bool { return l.done }

// simulatedContainer runs exec and attach for one container.
type simulatedContainer struct {
	k    *simulatedKubelet
	pod  *corev1.Pod
	name string
}

var errNoTerminal = errors.New("a simulated container has no terminal: run the command without -t/--tty")

// ExecInContainer runs cmd in the container's sandbox when the simulation
// can follow it at once (simulatedExec), else on this machine in the
// container's scratch folder, and reports its exit code as a container's
// would be.
func (c *simulatedContainer) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, stdout, stderr io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if tty {
		return errNoTerminal
	}
	if len(cmd) == 0 {
		return errors.New("no command given")
	}
	if in == nil {
		if res, ok := c.k.simulatedExec(c.pod, c.name, cmd, time.Now()); ok {
			for _, l := range res.output {
				out := io.Writer(stdout)
				if l.stderr {
					out = stderr
				}
				if out != nil && l.unfinished {
					io.WriteString(out, l.text)
				} else if out != nil {
					fmt.Fprintln(out, l.text)
				}
			}
			if res.exitCode != 0 {
				return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", res.exitCode), Code: int(res.exitCode)}
			}
			return nil
		}
	}
	c.k.execOnMachine(c.pod, c.name)
	dir := ContainerScratchDir(c.k.dir, c.pod.Namespace, c.pod.Name, c.name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		// In a shell's words, on stderr, since the code alone says little.
		err = fmt.Errorf("exec: %q: executable file not found in $PATH", cmd[0])
		if stderr != nil {
			fmt.Fprintln(stderr, err)
		}
		return utilexec.CodeExitError{Err: err, Code: 127}
	}
	x := exec.CommandContext(ctx, path, cmd[1:]...)
	x.Args[0] = cmd[0]
	x.Dir = dir
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, ct := range podContainers(c.pod) {
		if ct.Name == c.name {
			env, _ := containerEnv(c.pod, &ct, c.k.objectData(c.pod.Namespace)) // it runs: its environment was there
			for k, v := range env {
				x.Env = append(x.Env, k+"="+v)
			}
		}
	}
	if in != nil {
		x.Stdin = in
	}
	if stdout != nil {
		x.Stdout = stdout
	}
	if stderr != nil {
		x.Stderr = stderr
	}
	// A client that goes away takes the command along; a command left
	// running after the host stops dies with it.
	x.WaitDelay = time.Second
	waited, err := proc.Started(x)
	if err != nil {
		return err
	}
	err = <-waited
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() >= 0 {
		return utilexec.CodeExitError{Err: err, Code: exit.ExitCode()}
	}
	return err
}

// simulatedExec runs an exec'd command in the sandbox of the container's
// current run as it stands at now: the files of its volumes and those its
// script has written and removed by then (for a run whose command the
// simulation cannot follow, only its volumes that nothing writes). False
// when the container does not run or the command is not one it can follow
// at once (another program, a file it cannot know, a sleep, a write outside
// the container's volumes and /tmp): that runs on this machine. What the command writes and removes stays for the run: the
// next exec and the probes see it, the script's own output does not change.
func (k *simulatedKubelet) simulatedExec(p *corev1.Pod, container string, cmd []string, now time.Time) (run, bool) {
	k.mu.Lock()
	r := k.pods[p.UID]
	k.mu.Unlock()
	if r == nil {
		return run{}, false
	}
	v, ok := r.views.Load(container)
	if !ok {
		return run{}, false
	}
	view := v.(*execView)
	d := now.Sub(view.started)
	box := view.box.at(view.changes(), d)
	if view.guessed || view.onMachine() {
		box = box.unwritten()
	}
	res, err := readCommand(cmd, box)
	if err != nil || res.forever || res.duration > 0 {
		return run{}, false
	}
	for _, ch := range res.files {
		if m := mountIn(box.mounts, ch.path); m == nil || m.opaque {
			return run{}, false // a write the machine's commands would not see
		}
	}
	view.exec(d, res.files)
	return res, true
}

// execOnMachine notes that a command exec'd into the container's current
// run ran on this machine: what it wrote there, later commands followed in
// the sandbox cannot see, so they no longer read the run's writable
// folders there.
func (k *simulatedKubelet) execOnMachine(p *corev1.Pod, container string) {
	k.mu.Lock()
	r := k.pods[p.UID]
	k.mu.Unlock()
	if r == nil {
		return
	}
	if v, ok := r.views.Load(container); ok {
		v.(*execView).machine.Store(true)
	}
}

// AttachContainer shows the container's output from now on: its log.
func (c *simulatedContainer) AttachContainer(ctx context.Context, _, _, _ string, _ io.Reader, stdout, _ io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize) error {
	if tty {
		return errNoTerminal
	}
	if stdout == nil {
		return nil
	}
	path := ContainerLogPath(c.k.dir, c.pod.Namespace, c.pod.Name, c.name)
	offset := int64(0)
	if fi, err := os.Stat(path); err == nil {
		offset = fi.Size()
	}
	c.k.follow(ctx, path, offset, func(more []byte) bool {
		_, err := stdout.Write(logOptions{tailLines: -1}.render(more, false))
		return err == nil
	})
	return nil
}

// localForwarder connects a forwarded pod port to the same port on this
// machine's loopback address.
type localForwarder struct{}

func (localForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("simulated pod port %d forwards to 127.0.0.1:%d: %w", port, port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
	return nil
}
