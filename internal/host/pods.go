package host

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/vmatrix/vmatrix/syncer"
)

// How a simulated pod lives. The simulated kubelet is the one place these
// rules are: KWOK keeps the nodes Ready and finishes deleting pods; every
// step of a pod's life on a simulated node is decided here, from its spec.
//
//   - A container whose command the simulation can read (readCommand: sleep,
//     true, false, exit, echo, the programs of programs.go and sh -c scripts
//     of those; args alone too when they start with one of those programs,
//     argsAreCommand) runs for as long as it sleeps, prints what it echoes
//     into its log when the script gets there, and exits with its code. Its
//     log's last line then says so, which ends a `kubectl logs -f`.
//   - Any other container runs until its pod is deleted; in a pod of a Job it
//     runs for JobRunTime and succeeds instead, so a Job completes, visibly
//     (but for the pause image's entrypoint, which waits for ever).
//   - Init containers run one after another before the others; those with
//     restartPolicy Always (sidecars) start, pass their startup probe and
//     keep running. An ephemeral container (kubectl debug) starts when it is
//     added and runs once.
//   - An exited container is started again as restartPolicy says: at once
//     the first time, then after the kubelet's back-off (10 s, doubling, at
//     most 5 min), waiting in CrashLoopBackOff meanwhile; the pod ends
//     Succeeded or Failed when none will run again.
//   - A container is Ready once running, unless it has a startup or a
//     readiness probe: then as its probes say (probes.go), which can also
//     kill it.
//   - Annotations on the pod (or its template) choose an outcome instead, for
//     tests of failure handling; see the Annotation* constants.
//   - An image whose name says it does not exist (unpullable) is never
//     pulled: the container waits in ImagePullBackOff, as on a real node.
//   - A ConfigMap or Secret that the pod's volumes need, and is not there,
//     holds every container in ContainerCreating (FailedMount); one, or a
//     key of one, that a container's environment needs holds that container
//     in CreateContainerConfigError. Each is looked for again until it is
//     there (waitingOn). A container's environment and command are read
//     anew at each start, as a kubelet makes each run's container anew.
//   - Events tell the story as a kubelet's do: Pulled, Created, Started,
//     Unhealthy, BackOff, Killing, Evicted; Failed for an image that cannot
//     be pulled.
//     The first three are left to the syncer of a pod that says it writes
//     them (syncer.AnnotationStartEvents).
const (
	// simulatePrefix begins the annotations below.
	simulatePrefix = syncer.Prefix + "simulate-"
	// AnnotationExitCode makes every container exit with this code after its
	// run (AnnotationRunFor, else at once).
	AnnotationExitCode = simulatePrefix + "exit-code"
	// AnnotationRunFor makes every container run this long ("30s") and exit.
	AnnotationRunFor = simulatePrefix + "run-for"
	// AnnotationCrashTimes makes every container exit 1 this many times (after
	// AnnotationRunFor, else 1 s) before it runs as it otherwise would.
	AnnotationCrashTimes = simulatePrefix + "crash-times"
	// AnnotationNeverReady keeps the containers from ever becoming Ready.
	AnnotationNeverReady = simulatePrefix + "never-ready"
	// AnnotationEvictAfter evicts the pod after this long ("10s").
	AnnotationEvictAfter = simulatePrefix + "evict-after"
	// JobRunTime is how long a container of a Job's pod, or an init
	// container, runs when its command cannot be read; then it succeeds.
	JobRunTime = 2 * time.Second
)

// podCIDR is the range simulated pods get their IPs from.
const podCIDR = "10.244.0.0/16"

// simContainer is one container of a simulated pod and where it stands.
type simContainer struct {
	spec          corev1.Container
	init, sidecar bool
	ephemeral     bool      // added to the running pod (kubectl debug): runs once
	next          run       // what its next run does (prepare)
	config        waitingOn // a ConfigMap or Secret its environment needs
	crashes       int       // runs left that crash before next applies
	neverReady    bool
	pullFails     bool // its image does not exist: it never starts
	pullReported  bool // the events about it are out

	runs        int32        // starts so far
	code        int32        // the exit code of the current run
	started     time.Time    // of the current run; zero before the first
	box         sandbox      // what the current run found around it
	files       []fileChange // what the current run writes and removes, when
	folded      int          // of files: those kept in the pod's scratch
	guessed     bool         // the current run was not read from its command
	probes      []*prober    // of the current run
	view        *execView    // of the current run
	killing     bool         // the current run is being killed (a probe failed)
	upOnce      bool         // a sidecar that has run past its startup probe
	wroteBlind  bool         // a run of it that the simulation could not follow has started
	readyAt     time.Time    // zero: never
	readyLogged bool         // the log says it became ready
	pending     []outputLine // of the current run, not yet in its log
	exitAt      time.Time    // zero: runs until the pod goes
	waitUntil   time.Time    // in back-off until then
	term        *corev1.ContainerStateTerminated
	last        *corev1.ContainerStateTerminated
}

// podRun is one pod the simulated kubelet runs.
type podRun struct {
	cancel     context.CancelCauseFunc
	uid        types.UID
	namespace  string
	name       string
	containers []*simContainer
	policy     corev1.RestartPolicy
	evictAt    time.Time
	evicted    bool
	mounted    bool // its volumes' ConfigMaps and Secrets are there
	scratch    scratchFiles
	mount      waitingOn // one of them that is not
	startTime  time.Time
	ip, hostIP string
	// generation is the pod's latest metadata.generation, which the status
	// reports as observed; seen pokes the run when it changes.
	generation atomic.Int64
	seen       chan struct{}
	// ephemerals is how many ephemeral containers the pod has been seen
	// with; latest, the pod that added some, for the run to take on.
	ephemerals atomic.Int32
	latest     atomic.Pointer[corev1.Pod]
	// views holds an execView of each running container by name, for
	// the kubelet API's goroutines.
	views sync.Map
}

// execView is what a command exec'd into a container's current run finds:
// its sandbox, the files its script writes and removes from started, and
// what commands exec'd into it have written and removed (execed, by the
// kubelet API's goroutines).
type execView struct {
	box     sandbox
	files   []fileChange
	started time.Time
	guessed bool
	mu      sync.Mutex
	execed  []fileChange
	machine atomic.Bool // a command exec'd into it ran on this machine
}

func (v *execView) onMachine() bool { return v.machine.Load() }

// changes are the run's changes to its files, its script's and exec'd
// commands', in time order.
func (v *execView) changes() []fileChange {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.execed) == 0 {
		return v.files
	}
	all := slices.Concat(v.files, v.execed)
	slices.SortStableFunc(all, func(a, b fileChange) int { return cmp.Compare(a.at, b.at) })
	return all
}

// exec records what a command exec'd d into the run wrote and removed.
func (v *execView) exec(d time.Duration, changes []fileChange) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, ch := range changes {
		ch.at = d
		v.execed = append(v.execed, ch)
	}
}

// track starts running a pod that has come to a simulated node, and notices
// when one it runs is being deleted.
func (k *simulatedKubelet) track(p *corev1.Pod) {
	hostIP, simulated := k.nodes[p.Spec.NodeName]
	if !simulated {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.pods[p.UID]; ok {
		if p.DeletionTimestamp != nil {
			r.cancel(errDeleted)
			return
		}
		changed := r.generation.Swap(p.Generation) != p.Generation
		if n := int32(len(p.Spec.EphemeralContainers)); n > r.ephemerals.Load() {
			r.ephemerals.Store(n)
			r.latest.Store(p.DeepCopy())
			changed = true
		}
		if changed {
			select {
			case r.seen <- struct{}{}:
			default:
			}
		}
		return
	}
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	select {
	case <-k.stop:
		return
	default:
	}
	r := newPodRun(p, hostIP)
	r.generation.Store(p.Generation)
	r.ephemerals.Store(int32(len(p.Spec.EphemeralContainers)))
	r.seen = make(chan struct{}, 1)
	if p.Status.PodIP != "" {
		r.ip = p.Status.PodIP // a host that starts again keeps its pods' IPs
		k.ips.take(r.ip)
	} else if p.Spec.HostNetwork {
		r.ip = hostIP
	} else {
		r.ip = k.ips.next()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r.cancel = cancel
	k.pods[p.UID] = r
	k.runs.Add(1)
	go func() {
		defer k.runs.Done()
		k.live(ctx, r, p.DeepCopy())
	}()
}

var (
	errDeleted = errors.New("pod being deleted")
	errGone    = errors.New("pod gone")
)

// forget drops a deleted pod: its run, its IP, its logs and scratch folders.
func (k *simulatedKubelet) forget(p *corev1.Pod) {
	k.mu.Lock()
	if r, ok := k.pods[p.UID]; ok {
		r.cancel(errGone)
		if !p.Spec.HostNetwork {
			k.ips.release(r.ip)
		}
		delete(k.pods, p.UID)
	}
	k.mu.Unlock()
	os.RemoveAll(filepath.Dir(ContainerLogPath(k.dir, p.Namespace, p.Name, "x")))
}

func newPodRun(p *corev1.Pod, hostIP string) *podRun {
	r := &podRun{uid: p.UID, namespace: p.Namespace, name: p.Name, policy: p.Spec.RestartPolicy, hostIP: hostIP, scratch: scratchFiles{}}
	if r.policy == "" {
		r.policy = corev1.RestartPolicyAlways
	}
	add := func(c corev1.Container, init bool) {
		sc := &simContainer{spec: c, init: init, sidecar: init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways}
		if !sc.sidecar {
			if n, err := strconv.Atoi(p.Annotations[AnnotationCrashTimes]); err == nil && n > 0 {
				sc.crashes = n
			}
			sc.neverReady = p.Annotations[AnnotationNeverReady] == "true"
		}
		sc.pullFails = unpullable(c.Image)
		r.containers = append(r.containers, sc)
	}
	for _, c := range p.Spec.InitContainers {
		add(c, true)
	}
	for _, c := range p.Spec.Containers {
		add(c, false)
	}
	r.addEphemeral(p)
	if d, err := time.ParseDuration(p.Annotations[AnnotationEvictAfter]); err == nil {
		r.evictAt = time.Now().Add(d)
	}
	return r
}

// addEphemeral takes on the pod's ephemeral containers that the run does not
// have yet, and returns them. They run once, whatever the pod's
// restartPolicy, and the pod's annotations for failures on demand do not
// apply to them.
func (r *podRun) addEphemeral(p *corev1.Pod) []*simContainer {
	have := 0
	for _, c := range r.containers {
		if c.ephemeral {
			have++
		}
	}
	var added []*simContainer
	for _, ec := range p.Spec.EphemeralContainers[min(have, len(p.Spec.EphemeralContainers)):] {
		c := corev1.Container(ec.EphemeralContainerCommon)
		added = append(added, &simContainer{spec: c, ephemeral: true, pullFails: unpullable(c.Image)})
	}
	r.containers = append(r.containers, added...)
	return added
}

// planRun is what a container's next run does: what its command says when
// the simulation can read it, else what its kind of pod and container
// suggest; the failure-on-demand annotations override both.
func planRun(p *corev1.Pod, c *simContainer, box sandbox) run {
	argv := expandCommand(append(append([]string{}, c.spec.Command...), c.spec.Args...), box.env)
	if len(c.spec.Command) == 0 && !argsAreCommand(c.spec.Args) {
		argv = nil // the image's entrypoint: unknown
	}
	_, job := p.Labels["batch.kubernetes.io/job-name"]
	if _, old := p.Labels["job-name"]; old {
		job = true
	}
	plan, err := readCommand(argv, box)
	switch {
	case err == nil:
	case (job || c.init) && !c.sidecar && !c.ephemeral && !(len(argv) == 0 && isPause(c.spec.Image)):
		// Run to completion by their nature: an init container too. The
		// pause image's own entrypoint waits for ever, in a Job too.
		plan = run{duration: JobRunTime, guessed: true}
	default:
		plan = run{forever: true, guessed: true}
	}
	switch {
	case c.sidecar:
		plan.forever = true
		return plan
	case c.ephemeral:
		return plan // the pod's failures on demand are not its
	}
	runFor, _ := time.ParseDuration(p.Annotations[AnnotationRunFor])
	if runFor > 0 {
		plan = run{duration: runFor, guessed: true}
	}
	if code, err := strconv.Atoi(p.Annotations[AnnotationExitCode]); err == nil {
		plan = run{duration: runFor, exitCode: int32(code), guessed: true}
	}
	return plan
}

// waitingOn is a ConfigMap or Secret that a pod's volumes or a container's
// environment need and that is not there (yet): looked for again with
// back-off (0.5 s, doubling, at most 8 s), and told of in an event once it
// is missing twice in a row, so that one its syncer writes just after the
// pod is not worth one.
type waitingOn struct {
	why      string // in the kubelet's words; "" when nothing is missing
	misses   int    // looks in a row that found it missing
	reported string
	retryAt  time.Time
}

// missing records a look that found why, and reports whether to tell of it.
func (w *waitingOn) missing(why string, now time.Time) bool {
	if why != w.why {
		w.why, w.misses = why, 0
	}
	w.misses++
	w.retryAt = now.Add(min(500*time.Millisecond<<min(w.misses-1, 4), 8*time.Second))
	if w.misses >= 2 && w.reported != why {
		w.reported = why
		return true
	}
	return false
}

// argsAreCommand reports whether a container's args, given without a
// command, run as its command: they do when they begin with a program the
// simulation reads, as `kubectl run NAME --image=busybox -- sh -c '...'`
// gives them. On an image without an entrypoint (busybox, alpine, ubuntu)
// args replace its default command, and the entrypoint scripts of most
// others run a program named by their arguments.
func argsAreCommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	name := path.Base(args[0])
	return shells[name] || programs[name] || name == "echo" || name == "true" || name == "false"
}

// unpullable reports whether an image's name says that it does not exist,
// as tests that exercise a failed rollout name one: a registry in the
// reserved .invalid domain or named invalid.*, or a tag such as 404,
// invalid or does-not-exist. Every other image is "present on machine".
func unpullable(image string) bool {
	if host, _, ok := strings.Cut(image, "/"); ok && strings.ContainsAny(host, ".:") &&
		(strings.HasPrefix(host, "invalid.") || strings.HasSuffix(host, ".invalid")) {
		return true
	}
	name := image[strings.LastIndexByte(image, '/')+1:]
	_, tag, _ := strings.Cut(strings.SplitN(name, "@", 2)[0], ":")
	switch strings.ToLower(tag) {
	case "404", "invalid", "invalid-tag", "nonexistent", "non-existent", "doesnotexist", "does-not-exist", "missing":
		return true
	}
	return false
}

// isPause reports whether image is a pause image (registry.k8s.io/pause:3.10
// and the like), whose entrypoint waits until the container is stopped.
func isPause(image string) bool {
	name := image[strings.LastIndexByte(image, '/')+1:]
	name, _, _ = strings.Cut(name, "@")
	name, _, _ = strings.Cut(name, ":")
	return name == "pause"
}

// crashRun is the run of a container made to crash.
func crashRun(a map[string]string) run {
	d, err := time.ParseDuration(a[AnnotationRunFor])
	if err != nil {
		d = time.Second
	}
	return run{duration: d, exitCode: 1, guessed: true}
}

// live steps a pod through its life until it ends or is deleted, writing
// its status whenever it changes.
func (k *simulatedKubelet) live(ctx context.Context, r *podRun, p *corev1.Pod) {
	k.logLine(r, nil, "")
	var written []byte
	for {
		if latest := r.latest.Swap(nil); latest != nil {
			for _, c := range r.addEphemeral(latest) {
				k.logLine(r, c, createdLine(c))
			}
			p.Spec.EphemeralContainers = latest.Spec.EphemeralContainers
		}
		now := time.Now()
		next := k.step(r, p, now)
		st := r.status(p, now)
		data, _ := json.Marshal(map[string]any{"status": st})
		if string(data) != string(written) {
			if _, err := k.client.CoreV1().Pods(r.namespace).Patch(ctx, r.name, types.MergePatchType, data, metav1.PatchOptions{}, "status"); err != nil {
				if ctx.Err() != nil {
					return
				}
				next = now.Add(200 * time.Millisecond) // try again soon
			} else {
				written = data
			}
		}
		if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
			return
		}
		wait := time.Until(next)
		if next.IsZero() {
			wait = time.Hour
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == errDeleted {
				for _, c := range r.containers {
					if c.term == nil && c.waitUntil.IsZero() && !c.started.IsZero() {
						k.recorder.Eventf(p, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.spec.Name)
					}
				}
			}
			return
		case <-k.stop:
			return
		case <-r.seen: // a new generation to report
		case <-time.After(wait):
		}
	}
}

// step moves every container to where it stands at now and returns when the
// next change is due (zero: none is).
func (k *simulatedKubelet) step(r *podRun, p *corev1.Pod, now time.Time) time.Time {
	var next time.Time
	due := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !r.evictAt.IsZero() && !r.evicted {
		if !now.Before(r.evictAt) {
			r.evicted = true
			k.recorder.Event(p, corev1.EventTypeWarning, "Evicted", "The node was low on resource: memory (simulated).")
			for _, c := range r.containers {
				switch {
				case c.term != nil || c.started.IsZero():
				case !c.waitUntil.IsZero(): // in back-off: its last run's end stands
					c.term, c.waitUntil = c.last, time.Time{}
				default:
					c.term = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.NewTime(now)}
					k.logTerminated(r, c, c.term)
				}
				r.views.Delete(c.spec.Name)
			}
			return time.Time{}
		}
		due(r.evictAt)
	}
	if r.startTime.IsZero() {
		r.startTime = now
	}
	if !r.mounted {
		// A kubelet starts no container before the pod's volumes are set up.
		if now.Before(r.mount.retryAt) {
			return r.mount.retryAt
		}
		if why := volumesMissing(p, k.objectData(p.Namespace)); why != "" {
			if r.mount.missing(why, now) {
				k.recorder.Event(p, corev1.EventTypeWarning, "FailedMount", why)
			}
			return r.mount.retryAt
		}
		r.mounted, r.mount = true, waitingOn{}
	}
	initsDone := true
	for _, c := range r.containers {
		// In order: nothing after an init container that has not completed
		// starts (a sidecar counts as done once started and past its
		// startup probe), but for ephemeral containers, which debug a pod
		// stuck in its init too.
		if !initsDone && !c.ephemeral {
			continue
		}
		due(k.stepContainer(r, p, c, now))
		if c.init && !c.sidecar && !(c.term != nil && c.term.ExitCode == 0) || c.sidecar && !c.upOnce {
			initsDone = false
		}
	}
	return next
}

// stepContainer starts, readies, ends and restarts one container as its time
// comes, and returns when it next changes.
func (k *simulatedKubelet) stepContainer(r *podRun, p *corev1.Pod, c *simContainer, now time.Time) time.Time {
	if c.pullFails {
		if !c.pullReported {
			c.pullReported = true
			k.recorder.Eventf(p, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: not found (simulated: the name says it does not exist)", c.spec.Image)
			k.recorder.Eventf(p, corev1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.spec.Image)
		}
		return time.Time{}
	}
	for {
		switch {
		case c.started.IsZero() || (c.term == nil && !c.waitUntil.IsZero() && !now.Before(c.waitUntil)):
			if !k.prepare(r, p, c, now) {
				return c.config.retryAt
			}
			k.start(r, p, c, now)
		case c.term == nil && !c.waitUntil.IsZero():
			return c.waitUntil // in back-off
		case c.term == nil && !c.exitAt.IsZero() && !now.Before(c.exitAt):
			k.exit(r, p, c)
		case c.term == nil:
			if k.runProbes(r, p, c, now) {
				continue // killed: it exits
			}
			c.upOnce = c.upOnce || c.startedUp()
			k.print(r, c, now)
			if !c.readyAt.IsZero() && !c.readyLogged {
				c.readyLogged = true
				k.logLine(r, c, fmt.Sprintf("container %s is ready", c.spec.Name))
			}
			return earliest(earliest(c.exitAt, c.nextLine()), c.nextProbe())
		default: // terminated, and not to run again
			return time.Time{}
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && a.Before(b)) {
		return a
	}
	return b
}

// prepare makes a container's next run from its environment as it is now,
// since a kubelet makes each run's container anew; false while a ConfigMap,
// Secret or key that the environment needs is missing
// (CreateContainerConfigError).
func (k *simulatedKubelet) prepare(r *podRun, p *corev1.Pod, c *simContainer, now time.Time) bool {
	if now.Before(c.config.retryAt) {
		return false
	}
	data := k.objectData(p.Namespace)
	env, err := containerEnv(p, &c.spec, data)
	if err != nil {
		if c.config.missing(err.Error(), now) {
			k.recorder.Eventf(p, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		}
		return false
	}
	c.config = waitingOn{}
	for _, other := range r.containers {
		r.foldRun(other, now)
	}
	files, mounts := containerFiles(p, &c.spec, data, r.scratch, r.unknownVolumes(c))
	c.box = sandbox{env: env, files: files, mounts: mounts, dir: c.spec.WorkingDir, start: now}
	c.next = planRun(p, c, c.box)
	return true
}

// start begins a run of a container.
func (k *simulatedKubelet) start(r *podRun, p *corev1.Pod, c *simContainer, now time.Time) {
	plan := c.next
	if c.crashes > 0 {
		plan = crashRun(p.Annotations)
		c.crashes--
	}
	if c.runs > 0 {
		path := ContainerLogPath(k.dir, r.namespace, r.name, c.spec.Name)
		os.Rename(path, previousLogPath(path))
	}
	// A virtual cluster's syncer may write these itself, in the virtual
	// cluster only.
	if p.Annotations[syncer.AnnotationStartEvents] == "" {
		if c.runs == 0 {
			k.recorder.Eventf(p, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.spec.Image)
		}
		k.recorder.Eventf(p, corev1.EventTypeNormal, "Created", "Created container: %s", c.spec.Name)
		k.recorder.Eventf(p, corev1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
	}
	c.runs++
	c.started, c.waitUntil, c.term, c.code = now, time.Time{}, nil, plan.exitCode
	c.exitAt = time.Time{}
	if !plan.forever {
		c.exitAt = now.Add(plan.duration)
	}
	c.box.start, c.files, c.folded, c.guessed, c.killing = now, plan.files, 0, plan.guessed, false
	c.wroteBlind = c.wroteBlind || plan.guessed
	c.readyAt, c.readyLogged = time.Time{}, false
	c.view = &execView{box: c.box, files: c.files, started: now, guessed: c.guessed}
	r.views.Store(c.spec.Name, c.view)
	if c.probes = newProbers(&c.spec, now); c.probe(startupProbe) == nil && c.probe(readinessProbe) == nil {
		c.ready(now)
	}
	k.logLine(r, c, fmt.Sprintf("container %s started", c.spec.Name))
	c.pending = plan.output
	k.print(r, c, now)
}

// print writes to a container's log the lines its command has printed by now.
func (k *simulatedKubelet) print(r *podRun, c *simContainer, now time.Time) {
	for len(c.pending) > 0 && !now.Before(c.started.Add(c.pending[0].at)) {
		k.logLine(r, c, c.pending[0].text)
		c.pending = c.pending[1:]
	}
}

// nextLine is when the container's command prints its next line (zero:
// never again).
func (c *simContainer) nextLine() time.Time {
	if len(c.pending) == 0 {
		return time.Time{}
	}
	return c.started.Add(c.pending[0].at)
}

// exit ends a container's run and decides whether it runs again.
func (k *simulatedKubelet) exit(r *podRun, p *corev1.Pod, c *simContainer) {
	code := c.code
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	term := &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.NewTime(c.exitAt)}
	k.print(r, c, c.exitAt)
	k.logTerminated(r, c, term)
	r.views.Delete(c.spec.Name)
	r.foldRun(c, c.exitAt)
	c.files = c.files[:c.folded] // the rest, after it was killed, never happened
	if !r.restarts(c, code) {
		c.term = term
		return
	}
	c.last = term
	// A kubelet starts a container again at once the first time, and only
	// then backs off: 10 s, doubling, at most 5 min.
	var backoff time.Duration
	if c.runs > 1 {
		backoff = min(10*time.Second<<min(c.runs-2, 5), 5*time.Minute)
		k.recorder.Eventf(p, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.spec.Name, p.Name)
	}
	c.waitUntil = c.exitAt.Add(backoff)
	c.exitAt, c.readyAt = time.Time{}, time.Time{}
}

// foldRun keeps in the pod's scratch what the container's current run has
// written and removed in its writable volumes by upTo, for the containers
// and runs that start after: an emptyDir outlives a container's run. What
// a container writes after another has started, that one does not see.
func (r *podRun) foldRun(c *simContainer, upTo time.Time) {
	n := c.folded
	for n < len(c.files) && !c.started.Add(c.files[n].at).After(upTo) {
		n++
	}
	r.scratch.fold(c.box.mounts, c.files[c.folded:n])
	c.folded = n
}

// unknownVolumes are the pod's volumes whose files c cannot know, for
// c's script has read them before what others write beside it: those that
// a run the simulation could not follow wrote to (c's own earlier runs
// included), and those another container that has started writes to, but
// an init container that has completed (what it wrote is kept: foldRun).
// A container that starts after c is not known to write yet: the probes
// look again (runProbes).
func (r *podRun) unknownVolumes(c *simContainer) map[string]bool {
	unknown := map[string]bool{}
	for _, x := range r.containers {
		completed := x.init && !x.sidecar && x.term != nil
		for _, vm := range x.spec.VolumeMounts {
			switch {
			case vm.ReadOnly:
			case x.wroteBlind:
				unknown[vm.Name] = true
			case x != c && !completed && x.writesTo(vm.Name):
				unknown[vm.Name] = true
			}
		}
	}
	return unknown
}

// writesTo reports whether the container's current run writes to or
// removes from the pod's volume of that name.
func (c *simContainer) writesTo(volume string) bool {
	return slices.ContainsFunc(c.files, func(ch fileChange) bool {
		m := mountIn(c.box.mounts, ch.path)
		return m != nil && m.scratch == volume
	})
}

// restarts reports whether a container that exits with code runs again.
func (r *podRun) restarts(c *simContainer, code int32) bool {
	switch {
	case c.ephemeral:
		return false
	case c.sidecar:
		return true
	case c.init && code == 0:
		return false
	}
	return r.policy == corev1.RestartPolicyAlways && !c.init || r.policy != corev1.RestartPolicyNever && code != 0
}

// logTerminated ends a container's run in its log with the line that also
// ends a `kubectl logs -f` of it (endsRun).
func (k *simulatedKubelet) logTerminated(r *podRun, c *simContainer, term *corev1.ContainerStateTerminated) {
	k.logLine(r, c, terminatedLine(c.spec.Name)+fmt.Sprintf("exit code %d (%s)", term.ExitCode, term.Reason))
}

func terminatedLine(container string) string { return "container " + container + " terminated: " }

// logLine appends a line to a container's log; with no container, the
// first line of each container's log.
func (k *simulatedKubelet) logLine(r *podRun, c *simContainer, line string) {
	if c == nil {
		for _, c := range r.containers {
			appendLog(ContainerLogPath(k.dir, r.namespace, r.name, c.spec.Name), createdLine(c))
		}
		return
	}
	appendLog(ContainerLogPath(k.dir, r.namespace, r.name, c.spec.Name), line)
}

func createdLine(c *simContainer) string {
	return fmt.Sprintf("simulated container %s (image %s) created", c.spec.Name, c.spec.Image)
}

// status is the pod status at now.
func (r *podRun) status(p *corev1.Pod, now time.Time) corev1.PodStatus {
	st := corev1.PodStatus{
		HostIP: r.hostIP, HostIPs: []corev1.HostIP{{IP: r.hostIP}},
		PodIP: r.ip, PodIPs: []corev1.PodIP{{IP: r.ip}},
		StartTime: &metav1.Time{Time: r.startTime},
		QOSClass:  p.Status.QOSClass,
	}
	initsDone, allReady := true, true
	running, restarting, failed, finished := 0, 0, 0, 0
	apps := 0
	for _, c := range r.containers {
		cs := corev1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, ImageID: c.spec.Image, RestartCount: max(c.runs-1, 0)}
		if c.last != nil {
			cs.LastTerminationState.Terminated = c.last
		}
		started := false
		switch {
		case c.pullFails:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", c.spec.Image)}
		case c.config.why != "" && c.term == nil:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: c.config.why}
		case c.started.IsZero():
			// As a kubelet words it, for init and app containers alike.
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			if len(p.Spec.InitContainers) > 0 {
				cs.State.Waiting.Reason = "PodInitializing"
			}
		case c.term != nil:
			cs.State.Terminated = c.term
			cs.ContainerID = containerID(r, c)
		case !c.waitUntil.IsZero():
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off restarting failed container=%s pod=%s", c.spec.Name, p.Name)}
			cs.ContainerID = containerID(r, c)
		default:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.started)}
			cs.ContainerID = containerID(r, c)
			started = c.startedUp()
			cs.Ready = !c.readyAt.IsZero() && !now.Before(c.readyAt)
		}
		if r.evicted {
			cs.Ready = false
		}
		cs.Started = &started
		if c.ephemeral {
			cs.Ready = false // an ephemeral container is never Ready
			st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, cs)
			continue
		}
		if c.init {
			if !c.sidecar && !(c.term != nil && c.term.ExitCode == 0) || c.sidecar && !c.upOnce {
				initsDone = false
			}
			if c.sidecar {
				allReady = allReady && cs.Ready // a sidecar's readiness is the pod's too
			}
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
			continue
		}
		apps++
		allReady = allReady && cs.Ready
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Waiting != nil && c.runs > 0:
			restarting++
		case cs.State.Terminated != nil:
			finished++
			if cs.State.Terminated.ExitCode != 0 {
				failed++
			}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	initFailed := false
	for _, c := range r.containers {
		if c.init && !c.sidecar && c.term != nil && c.term.ExitCode != 0 {
			initFailed = true
		}
	}
	switch {
	case r.evicted:
		st.Phase, st.Reason, st.Message = corev1.PodFailed, "Evicted", "The node was low on resource: memory (simulated)."
	case initFailed:
		st.Phase = corev1.PodFailed
	case finished == apps && failed > 0:
		st.Phase = corev1.PodFailed
	case finished == apps:
		st.Phase = corev1.PodSucceeded
	case running > 0 || restarting > 0 || finished > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	ready := initsDone && allReady && running == apps && !r.evicted
	for _, gate := range p.Spec.ReadinessGates {
		ready = ready && conditionTrue(p, gate.ConditionType)
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now), ObservedGeneration: r.generation.Load()}
		if ok {
			c.Status, reason = corev1.ConditionTrue, ""
		}
		c.Reason = reason
		for _, old := range p.Status.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime // unchanged
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	done := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	notReady := "ContainersNotReady"
	if done {
		notReady = "PodCompleted"
	}
	cond("PodReadyToStartContainers", !done, "")
	cond(corev1.PodInitialized, initsDone, "ContainersNotInitialized")
	cond(corev1.ContainersReady, ready, notReady)
	cond(corev1.PodReady, ready, notReady)
	for _, c := range p.Status.Conditions {
		switch c.Type {
		case "PodReadyToStartContainers", corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady:
		default:
			st.Conditions = append(st.Conditions, c) // PodScheduled, readiness gates, DisruptionTarget...
		}
	}
	// As a kubelet does (PodObservedGenerationTracking): the spec it acted on.
	st.ObservedGeneration = r.generation.Load()
	return st
}

func conditionTrue(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerID(r *podRun, c *simContainer) string {
	return fmt.Sprintf("%s%s-%s-%d", syncer.SimulatedContainerPrefix, r.uid, c.spec.Name, c.runs)
}

// startEvents sends the simulated kubelet's events to the host.
func (k *simulatedKubelet) startEvents() {
	k.events = record.NewBroadcaster()
	k.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	k.recorder = k.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet"})
}

// ipPool hands out pod IPs of a range.
type ipPool struct {
	mu   sync.Mutex
	base uint32
	size uint32
	used map[uint32]bool
	last uint32
}

func newIPPool(cidr string) *ipPool {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	ones, bits := n.Mask.Size()
	return &ipPool{base: binary.BigEndian.Uint32(n.IP.To4()), size: 1 << (bits - ones), used: map[uint32]bool{}, last: 1}
}

func (p *ipPool) next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := uint32(0); i < p.size; i++ {
		p.last = p.last%(p.size-2) + 2 // skip the network address and .1
		if !p.used[p.last] {
			p.used[p.last] = true
			return p.ip(p.last)
		}
	}
	return ""
}

func (p *ipPool) ip(offset uint32) string {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, p.base+offset)
	return net.IP(b).String()
}

func (p *ipPool) offset(ip string) (uint32, bool) {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		return 0, false
	}
	o := binary.BigEndian.Uint32(v4) - p.base
	return o, o < p.size
}

func (p *ipPool) take(ip string) {
	if o, ok := p.offset(ip); ok {
		p.mu.Lock()
		p.used[o] = true
		p.mu.Unlock()
	}
}

func (p *ipPool) release(ip string) {
	if o, ok := p.offset(ip); ok {
		p.mu.Lock()
		delete(p.used, o)
		p.mu.Unlock()
	}
}
