package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

const (
	kindPod   = "Pod"
	kindToken = "ServiceAccountToken"
	// annotationTokenRefresh on a host pod (or, with Options.TokenSecrets,
	// its token Secret) is when its tokens are to be requested again (80% of
	// their life, as the kubelet does).
	annotationTokenRefresh = "vmatrix.io/token-refresh"
	// Indexes on the pod informers.
	indexConfigMaps = "configmaps" // virtual pods by "namespace/name" of referenced ConfigMaps
	indexSecrets    = "secrets"    // virtual pods by referenced Secrets
	indexNode       = "node"       // pods by node name
)

func (s *Syncer) setupPods() (*controller, error) {
	s.pods = s.newController("pods", 8, s.syncPod)
	vPods := s.vInf.Core().V1().Pods().Informer()
	hPods := s.hInf.Core().V1().Pods().Informer()
	err := vPods.AddIndexers(cache.Indexers{
		indexConfigMaps: func(obj any) ([]string, error) { cms, _ := podRefs(obj.(*corev1.Pod)); return cms, nil },
		indexSecrets:    func(obj any) ([]string, error) { _, secrets := podRefs(obj.(*corev1.Pod)); return secrets, nil },
		indexNode:       byNodeName,
	})
	if err != nil {
		return nil, err
	}
	if err := addIndex(hPods, indexNode, byNodeName); err != nil {
		return nil, err
	}
	_, err = vPods.AddEventHandler(handler(func(obj metav1.Object) {
		s.pods.byKey(obj)
		p := obj.(*corev1.Pod)
		cms, secrets := podRefs(p)
		for _, k := range cms {
			s.configMaps.add(k)
		}
		for _, k := range secrets {
			s.secrets.add(k)
		}
		if p.Spec.NodeName != "" {
			s.nodes.add(p.Spec.NodeName)
		}
	}))
	if err != nil {
		return nil, err
	}
	// A token Secret removed on the host is made again for its pod.
	if s.opts.TokenSecrets {
		if _, err := s.hInf.Core().V1().Secrets().Informer().AddEventHandler(handler(s.pods.byVirtualKey(kindToken))); err != nil {
			return nil, err
		}
	}
	_, err = hPods.AddEventHandler(handler(func(obj metav1.Object) {
		s.pods.byVirtualKey(kindPod)(obj)
		if n := obj.(*corev1.Pod).Spec.NodeName; n != "" {
			s.nodes.add(n)
		}
	}))
	return s.pods, err
}

func byNodeName(obj any) ([]string, error) {
	if n := obj.(*corev1.Pod).Spec.NodeName; n != "" {
		return []string{n}, nil
	}
	return nil, nil
}

// syncPod makes the host pod follow the virtual pod, and the virtual pod's
// node and status follow the host pod.
func (s *Syncer) syncPod(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	v, err := s.virtualPod(ns, name)
	if err != nil {
		return err
	}
	h, err := s.hostPod(s.hostName(ns, name))
	if err != nil {
		return err
	}
	api := s.host.CoreV1().Pods(s.opts.HostNamespace)
	switch {
	case v == nil:
		s.tokensWritten.Delete(s.tokenSecretName(ns, name))
		s.podsCreated.Delete(key)
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	case h != nil && h.Annotations[AnnotationUID] != string(v.UID):
		// The host pod of an earlier virtual pod of the same name (a
		// StatefulSet's, say): it goes first; its deletion requeues this key.
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	case v.DeletionTimestamp != nil:
		if h != nil {
			if err := s.updateVirtualStatus(ctx, v, h); err != nil {
				return err
			}
			return deleteHost(ctx, s, api, h, metav1.DeleteOptions{GracePeriodSeconds: v.DeletionGracePeriodSeconds})
		}
		// Nothing runs any more; no kubelet will confirm the deletion in the
		// virtual cluster, so the syncer does.
		return s.deleteVirtualPod(ctx, v, 0)
	case h == nil && ranOnHost(v):
		// The host removed the pod (evicted, deleted): so does the virtual cluster.
		return s.deleteVirtualPod(ctx, v, 0)
	case h == nil:
		if wait := s.informerWait(&s.podsCreated, key, v.UID); wait > 0 {
			// The informer has not yet shown the host pod a sync of a
			// moment ago made: made again now, it would cost a refused
			// create and replace the pod's fresh token.
			s.pods.queue.AddAfter(key, wait)
			return nil
		}
		s.replacing.Delete(key)
		return s.createHostPod(ctx, v)
	}
	s.podsCreated.Delete(key)
	desired := s.translatePod(v)
	if h.DeletionTimestamp != nil {
		if _, ok := s.replacing.Load(key); ok {
			return nil // deleted to be placed again: made anew once gone
		}
		grace := int64(0)
		if h.DeletionGracePeriodSeconds != nil {
			grace = *h.DeletionGracePeriodSeconds
		}
		return s.deleteVirtualPod(ctx, v, grace)
	}
	if h.Spec.NodeName != "" {
		// Placed for good: its digest stays what it was (the pod, bound
		// since, would now name its node), and costs no write.
		if digest, ok := h.Annotations[annotationPlacement]; ok {
			desired.Annotations[annotationPlacement] = digest
		} else {
			delete(desired.Annotations, annotationPlacement)
		}
	}
	if !placementChanged(h, desired) {
		s.replacing.Delete(key) // a replacement the host's scheduling overtook
	} else {
		// Not scheduled yet, and the virtual Nodes it may go to changed:
		// the host pod goes, unless the host scheduled it meanwhile (the
		// resource version says), and its deletion requeues this key,
		// which makes it anew.
		s.replacing.Store(key, true)
		rv := h.ResourceVersion
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	}
	if err := s.annotateTokens(ctx, v, h, desired); err != nil {
		return err
	}
	if h, err = ensureHost(ctx, s, api, kindPod, h, desired, mergePod); err != nil {
		return s.reportClash(err, v)
	}
	if err := s.addEphemeralContainers(ctx, v, h, desired); err != nil {
		return err
	}
	if err := s.ensureTokenSecret(ctx, v, h); err != nil {
		return err
	}
	if err := s.updateVirtualStatus(ctx, v, h); err != nil {
		return err
	}
	if h.Spec.NodeName != "" && v.Spec.NodeName == "" {
		return s.bind(ctx, v, h.Spec.NodeName)
	}
	return nil
}

// ranOnHost tells from the status that the syncer copied up that a host pod
// existed: a virtual apiserver alone never sets these.
func ranOnHost(v *corev1.Pod) bool {
	return v.Status.StartTime != nil || v.Status.PodIP != "" ||
		v.Status.Phase == corev1.PodRunning || v.Status.Phase == corev1.PodSucceeded || v.Status.Phase == corev1.PodFailed
}

func (s *Syncer) createHostPod(ctx context.Context, v *corev1.Pod) error {
	if len(v.Spec.SchedulingGates) > 0 {
		return nil // not ready to schedule yet; an update removes the gates
	}
	if why := s.refusal(v); why != "" {
		s.recorder.Eventf(v, corev1.EventTypeWarning, "SyncRefused",
			"not run on the host: the pod uses %s, which this virtual cluster does not allow", why)
		return nil
	}
	// What the pod mounts goes first, as a kubelet would otherwise wait for it.
	cms, secrets := podRefs(v)
	for _, k := range cms {
		if err := s.syncConfigMap(ctx, k); err != nil {
			return err
		}
	}
	for _, k := range secrets {
		if err := s.syncSecret(ctx, k); err != nil {
			return err
		}
	}
	desired := s.translatePod(v)
	// A pod is made without ephemeral containers; they are added after.
	desired.Spec.EphemeralContainers = nil
	if err := s.annotateTokens(ctx, v, nil, desired); err != nil {
		return err
	}
	recordWritten(desired)
	h, err := s.host.CoreV1().Pods(s.opts.HostNamespace).Create(ctx, desired, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return s.hostPodTaken(ctx, v, desired.Name)
	}
	if err != nil {
		return err
	}
	s.podsCreated.Store(v.Namespace+"/"+v.Name, recentWrite{uid: v.UID, at: s.opts.Clock.Now()})
	return s.ensureTokenSecret(ctx, v, h)
}

// hostPodTaken handles a host pod of the name the informer does not show
// yet. One made for the same virtual pod, by a sync of a moment ago, is left
// as it is: the informer's event brings the key back, and merged now it
// would get the tokens just requested in place of its own. One of an
// earlier virtual pod of that name goes first, and its deletion brings the
// key back. Anything else is a clash.
func (s *Syncer) hostPodTaken(ctx context.Context, v *corev1.Pod, name string) error {
	api := s.host.CoreV1().Pods(s.opts.HostNamespace)
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	switch {
	case err != nil:
		return err // gone meanwhile too: the key is tried again
	case !s.ownedKind(cur, kindPod):
		return s.reportClash(&clashError{kindPod, cur.Namespace, cur.Name}, v)
	case cur.Annotations[AnnotationUID] == string(v.UID):
		return nil
	}
	uid := cur.UID
	return ignoreGone(api.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}}))
}

// addEphemeralContainers adds to host pod h the ephemeral containers that
// were added to virtual pod v (kubectl debug), translated as its other
// containers are (desired). An ephemeral container is never changed or
// removed. Unless AllowPrivileged, the host copy goes without SYS_PTRACE,
// which kubectl debug's default profile (general) adds and the baseline
// Pod Security Standard forbids: the debug shell runs, without tracing. One
// the baseline still forbids is refused, with one event, and the others
// are added.
func (s *Syncer) addEphemeralContainers(ctx context.Context, v, h, desired *corev1.Pod) error {
	have := map[string]bool{}
	for _, ec := range h.Spec.EphemeralContainers {
		have[ec.Name] = true
	}
	want := h.DeepCopy()
	for _, ec := range desired.Spec.EphemeralContainers {
		if have[ec.Name] {
			continue
		}
		ec := ec.DeepCopy()
		if sc := ec.SecurityContext; sc != nil && sc.Capabilities != nil && !s.opts.AllowPrivileged {
			sc.Capabilities.Add = slices.DeleteFunc(sc.Capabilities.Add, func(c corev1.Capability) bool { return c == "SYS_PTRACE" })
		}
		trial := want.DeepCopy()
		trial.Spec.EphemeralContainers = append(trial.Spec.EphemeralContainers, *ec)
		if why := s.refusal(trial); why != "" {
			if _, told := s.refusedEphemeral.LoadOrStore(string(v.UID)+"/"+ec.Name, true); !told {
				s.recorder.Eventf(v, corev1.EventTypeWarning, "SyncRefused",
					"ephemeral container %s not run on the host: it uses %s, which this virtual cluster does not allow", ec.Name, why)
			}
			continue
		}
		want = trial
	}
	if len(want.Spec.EphemeralContainers) == len(h.Spec.EphemeralContainers) {
		return nil
	}
	_, err := s.host.CoreV1().Pods(h.Namespace).UpdateEphemeralContainers(ctx, h.Name, want, metav1.UpdateOptions{})
	return ignoreGone(err)
}

func (s *Syncer) deleteVirtualPod(ctx context.Context, v *corev1.Pod, grace int64) error {
	if v.DeletionTimestamp != nil && grace > 0 {
		return nil
	}
	uid := v.UID
	err := s.virtual.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if apierrors.IsConflict(err) {
		return nil // another pod of that name by now
	}
	return ignoreGone(err)
}

// bind binds the virtual pod to the node the host chose, after making sure
// the virtual Node exists (the pod garbage collector removes pods bound to
// missing nodes).
func (s *Syncer) bind(ctx context.Context, v *corev1.Pod, node string) error {
	if err := s.syncNode(ctx, node); err != nil {
		return err
	}
	err := s.virtual.CoreV1().Pods(v.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: v.Name, Namespace: v.Namespace, UID: v.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if apierrors.IsConflict(err) {
		return nil // bound already
	}
	return ignoreGone(err)
}

// updateVirtualStatus copies the host pod's status up when it differs in what
// a user or a controller reads. The comparison leaves out fields a virtual
// apiserver older than the host may drop, so that the two never flap.
func (s *Syncer) updateVirtualStatus(ctx context.Context, v, h *corev1.Pod) error {
	want := h.Status.DeepCopy()
	want.QOSClass = v.Status.QOSClass // the virtual apiserver's own, immutable
	// Generations are each side's own: once the host's node has acted on the
	// host pod's latest spec, it has acted on the virtual pod's too.
	observed := func(host int64) int64 {
		if host != 0 && host >= h.Generation {
			return v.Generation
		}
		return 0
	}
	want.ObservedGeneration = observed(h.Status.ObservedGeneration)
	for i := range want.Conditions {
		want.Conditions[i].ObservedGeneration = observed(want.Conditions[i].ObservedGeneration)
	}
	have := podStatusSummary(&v.Status)
	if s.dropsObservedGeneration.Load() {
		have.ObservedGeneration = want.ObservedGeneration // not the virtual apiserver's to keep
	}
	if equality.Semantic.DeepEqual(have, podStatusSummary(want)) {
		return nil
	}
	// Before the status: whoever sees a run in the status finds its events.
	if err := s.startEvents(ctx, v, h); err != nil {
		return err
	}
	cp := v.DeepCopy()
	cp.Status = *want
	updated, err := s.virtual.CoreV1().Pods(v.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if err == nil && want.ObservedGeneration != 0 && updated.Status.ObservedGeneration == 0 {
		// A virtual apiserver without PodObservedGenerationTracking drops it:
		// comparing it would update the pod for ever.
		s.dropsObservedGeneration.Store(true)
	}
	return ignoreGone(err)
}

type podStatusView struct {
	ObservedGeneration int64
	Phase              corev1.PodPhase
	Reason, Message    string
	HostIP, PodIP      string
	PodIPs             []corev1.PodIP
	StartTime          *metav1.Time
	Conditions         []conditionView
	Init, Containers   []containerView
	Ephemeral          []containerView
}

type conditionView struct{ Type, Status, Reason, Message string }

type containerView struct {
	Name               string
	Ready              bool
	Started            *bool
	RestartCount       int32
	State, LastState   corev1.ContainerState
	Image, ContainerID string
}

func podStatusSummary(st *corev1.PodStatus) podStatusView {
	v := podStatusView{ObservedGeneration: st.ObservedGeneration, Phase: st.Phase, Reason: st.Reason, Message: st.Message, HostIP: st.HostIP, PodIP: st.PodIP, PodIPs: st.PodIPs, StartTime: st.StartTime}
	for _, c := range st.Conditions {
		v.Conditions = append(v.Conditions, conditionView{string(c.Type), string(c.Status), c.Reason, c.Message})
	}
	containers := func(list []corev1.ContainerStatus) (out []containerView) {
		for _, c := range list {
			out = append(out, containerView{c.Name, c.Ready, c.Started, c.RestartCount, c.State, c.LastTerminationState, c.Image, c.ContainerID})
		}
		return out
	}
	v.Init, v.Containers, v.Ephemeral = containers(st.InitContainerStatuses), containers(st.ContainerStatuses), containers(st.EphemeralContainerStatuses)
	return v
}

// mergePod carries over what may change in a running pod.
func mergePod(cur, desired *corev1.Pod) bool {
	changed := false
	for i := range cur.Spec.Containers {
		if i < len(desired.Spec.Containers) && cur.Spec.Containers[i].Image != desired.Spec.Containers[i].Image {
			cur.Spec.Containers[i].Image = desired.Spec.Containers[i].Image
			changed = true
		}
	}
	if !equality.Semantic.DeepEqual(cur.Spec.ActiveDeadlineSeconds, desired.Spec.ActiveDeadlineSeconds) && desired.Spec.ActiveDeadlineSeconds != nil {
		cur.Spec.ActiveDeadlineSeconds = desired.Spec.ActiveDeadlineSeconds
		changed = true
	}
	return changed
}

// baseline checks pods against the Pod Security Standards' baseline level,
// with the checks of the upstream admission plugin.
var baseline = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// refusal says why a pod may not run on the host ("" if it may): what the
// baseline Pod Security Standard forbids (privileged containers, host
// namespaces, hostPath volumes, host ports, added capabilities, unsafe
// sysctls, ...), unless AllowPrivileged.
func (s *Syncer) refusal(p *corev1.Pod) string {
	if s.opts.AllowPrivileged {
		return ""
	}
	res := policy.AggregateCheckResults(baseline.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelBaseline, Version: psapi.LatestVersion()}, &p.ObjectMeta, &p.Spec))
	if res.Allowed {
		return ""
	}
	return res.ForbiddenDetail()
}

// visitContainers calls fn for every container of a pod spec, init and
// ephemeral ones included.
func visitContainers(spec *corev1.PodSpec, fn func(*corev1.Container)) {
	for i := range spec.InitContainers {
		fn(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		fn(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		fn((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

// visitRefs calls configMap, secret and pvc with a pointer to every name in
// a pod spec that refers to an object of the pod's namespace. Both the
// reference index and the renaming for the host go through here, so they
// cannot disagree.
func visitRefs(spec *corev1.PodSpec, configMap, secret, pvc func(*string)) {
	for i := range spec.ImagePullSecrets {
		secret(&spec.ImagePullSecrets[i].Name)
	}
	for i := range spec.Volumes {
		vol := &spec.Volumes[i]
		switch {
		case vol.ConfigMap != nil:
			configMap(&vol.ConfigMap.Name)
		case vol.Secret != nil:
			secret(&vol.Secret.SecretName)
		case vol.PersistentVolumeClaim != nil:
			pvc(&vol.PersistentVolumeClaim.ClaimName)
		case vol.Projected != nil:
			for j := range vol.Projected.Sources {
				src := &vol.Projected.Sources[j]
				if src.ConfigMap != nil {
					configMap(&src.ConfigMap.Name)
				}
				if src.Secret != nil {
					secret(&src.Secret.Name)
				}
			}
		}
	}
	visitContainers(spec, func(c *corev1.Container) {
		for i := range c.EnvFrom {
			if r := c.EnvFrom[i].ConfigMapRef; r != nil {
				configMap(&r.Name)
			}
			if r := c.EnvFrom[i].SecretRef; r != nil {
				secret(&r.Name)
			}
		}
		for i := range c.Env {
			if vf := c.Env[i].ValueFrom; vf != nil {
				if vf.ConfigMapKeyRef != nil {
					configMap(&vf.ConfigMapKeyRef.Name)
				}
				if vf.SecretKeyRef != nil {
					secret(&vf.SecretKeyRef.Name)
				}
			}
		}
	})
}

// podRefs lists the "namespace/name" keys of the ConfigMaps and Secrets a pod
// refers to.
func podRefs(p *corev1.Pod) (configMaps, secrets []string) {
	spec := p.Spec.DeepCopy()
	collect := func(into *[]string) func(*string) {
		return func(name *string) {
			if *name != "" {
				*into = append(*into, p.Namespace+"/"+*name)
			}
		}
	}
	visitRefs(spec, collect(&configMaps), collect(&secrets), func(*string) {})
	return configMaps, secrets
}

// translatePod is the host pod of a virtual pod: references renamed to the
// host copies, the virtual service account tokens from the host pod's own
// annotations (or a host Secret), and nothing the host would add of its own
// (token, service links, priority).
func (s *Syncer) translatePod(v *corev1.Pod) *corev1.Pod {
	h := &corev1.Pod{ObjectMeta: s.hostMeta(kindPod, v, v.Labels, v.Annotations)}
	h.Annotations[AnnotationStartEvents] = "syncer"
	spec := v.Spec.DeepCopy()
	rename := func(name *string) { *name = s.hostName(v.Namespace, *name) }
	visitRefs(spec, rename, rename, rename)
	token := s.tokenSecretName(v.Namespace, v.Name)
	for i := range spec.Volumes {
		vol := &spec.Volumes[i]
		if vol.DownwardAPI != nil {
			for j := range vol.DownwardAPI.Items {
				rewriteFieldRef(vol.DownwardAPI.Items[j].FieldRef)
			}
		}
		if vol.Projected == nil {
			continue
		}
		for j := range vol.Projected.Sources {
			src := &vol.Projected.Sources[j]
			if sat := src.ServiceAccountToken; sat != nil {
				src.ServiceAccountToken = nil
				if s.opts.TokenSecrets {
					src.Secret = &corev1.SecretProjection{
						LocalObjectReference: corev1.LocalObjectReference{Name: token},
						Items:                []corev1.KeyToPath{{Key: tokenKey(sat.Audience), Path: sat.Path}},
					}
				} else {
					src.DownwardAPI = &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
						Path:     sat.Path,
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + tokenAnnotation(tokenKey(sat.Audience)) + "']"},
					}}}
				}
			}
			if src.DownwardAPI != nil {
				for k := range src.DownwardAPI.Items {
					rewriteFieldRef(src.DownwardAPI.Items[k].FieldRef)
				}
			}
		}
	}
	visitContainers(spec, func(c *corev1.Container) {
		for i := range c.Env {
			if c.Env[i].ValueFrom != nil {
				rewriteFieldRef(c.Env[i].ValueFrom.FieldRef)
			}
		}
	})
	// The host scheduler places the pod, among the nodes the virtual
	// cluster's rules allow; the virtual pod is bound afterwards.
	s.place(v, spec)
	spec.NodeName = ""
	// The host's default ServiceAccount, with nothing mounted: the virtual
	// tokens come from the sources above.
	spec.ServiceAccountName, spec.DeprecatedServiceAccount = "", ""
	spec.AutomountServiceAccountToken = new(bool)
	// Service links would name host Services.
	spec.EnableServiceLinks = new(bool)
	// Priority classes and runtime class overhead are the virtual cluster's
	// objects; the host's admission would reject their values.
	spec.PriorityClassName, spec.Priority, spec.PreemptionPolicy, spec.Overhead = "", nil, nil, nil
	if spec.Hostname == "" && len(validation.IsDNS1123Label(v.Name)) == 0 {
		spec.Hostname = v.Name // what the pod sees as its hostname, as in the virtual cluster
	}
	spec.Subdomain = ""
	h.Spec = *spec
	notePlacement(h)
	return h
}

// rewriteFieldRef points downward-API references to the pod's own identity at
// the annotations that carry the virtual values.
func rewriteFieldRef(ref *corev1.ObjectFieldSelector) {
	if ref == nil {
		return
	}
	switch ref.FieldPath {
	case "metadata.name":
		ref.FieldPath = "metadata.annotations['" + AnnotationName + "']"
	case "metadata.namespace":
		ref.FieldPath = "metadata.annotations['" + AnnotationNS + "']"
	case "metadata.uid":
		ref.FieldPath = "metadata.annotations['" + AnnotationUID + "']"
	}
}

// recentWrite is a host object the syncer wrote: for the virtual pod of
// uid, at.
type recentWrite struct {
	uid types.UID
	at  time.Time
}

// informerLag bounds how long the host informer may take to show an object
// the syncer wrote.
const informerLag = 5 * time.Second

// informerWait is how much longer the host informer may take to show what
// a sync of a moment ago wrote for the pod of uid, noted in written under
// key; 0 when nothing is to be waited for.
func (s *Syncer) informerWait(written *sync.Map, key string, uid types.UID) time.Duration {
	w, ok := written.Load(key)
	if !ok || w.(recentWrite).uid != uid {
		return 0
	}
	return max(w.(recentWrite).at.Add(informerLag).Sub(s.opts.Clock.Now()), 0)
}

// tokenKey is the key of the token for audience in a token Secret.
func tokenKey(audience string) string {
	if audience == "" {
		return "token"
	}
	sum := sha256.Sum256([]byte(audience))
	return "token-" + hex.EncodeToString(sum[:])[:10]
}

// tokenAnnotation is the host pod annotation that carries the token of key
// (a tokenKey), which the host pod mounts by the downward API.
func tokenAnnotation(key string) string { return "vmatrix.io/" + key }

// tokenLives are the token audiences a pod mounts, with the life each asks for.
func tokenLives(v *corev1.Pod) map[string]int64 {
	want := map[string]int64{} // audience -> expiration seconds
	for _, vol := range v.Spec.Volumes {
		if vol.Projected == nil {
			continue
		}
		for _, src := range vol.Projected.Sources {
			if sat := src.ServiceAccountToken; sat != nil {
				exp := int64(3600)
				if sat.ExpirationSeconds != nil {
					exp = *sat.ExpirationSeconds
				}
				want[sat.Audience] = exp
			}
		}
	}
	return want
}

// requestTokens asks the virtual apiserver for the pod's service account
// tokens, bound to the virtual pod, by tokenKey; refresh is when the first
// of them has lived 80% of its life.
func (s *Syncer) requestTokens(ctx context.Context, v *corev1.Pod, want map[string]int64) (tokens map[string]string, refresh time.Time, err error) {
	tokens = map[string]string{}
	sa := v.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	for audience, exp := range want {
		req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: v.Name, UID: v.UID},
		}}
		if audience != "" {
			req.Spec.Audiences = []string{audience}
		}
		tr, err := s.virtual.CoreV1().ServiceAccounts(v.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("requesting a token of service account %s/%s: %w", v.Namespace, sa, err)
		}
		tokens[tokenKey(audience)] = tr.Status.Token
		at := s.opts.Clock.Now().Add(time.Duration(exp) * time.Second * 8 / 10)
		if refresh.IsZero() || at.Before(refresh) {
			refresh = at
		}
	}
	return tokens, refresh, nil
}

// renewAt queues the pod again for when its tokens are due, whatever the
// resync period; it says whether that is still to come.
func (s *Syncer) renewAt(v *corev1.Pod, refresh string) bool {
	at, err := time.Parse(time.RFC3339, refresh)
	if wait := at.Sub(s.opts.Clock.Now()); err == nil && wait > 0 {
		s.pods.queue.AddAfter(v.Namespace+"/"+v.Name, wait)
		return true
	}
	return false
}

// annotateTokens puts the pod's virtual service account tokens in the
// annotations of its host pod, desired: those the host pod h carries while
// they are not due, else new ones. Carried by the pod itself, a token costs
// no host write of its own (as in vCluster by default); whoever may read the
// host namespace's pods may read it.
func (s *Syncer) annotateTokens(ctx context.Context, v, h, desired *corev1.Pod) error {
	want := tokenLives(v)
	if s.opts.TokenSecrets || len(want) == 0 {
		return nil
	}
	if h != nil && s.renewAt(v, h.Annotations[annotationTokenRefresh]) {
		kept := 0
		for audience := range want {
			if tok, ok := h.Annotations[tokenAnnotation(tokenKey(audience))]; ok {
				desired.Annotations[tokenAnnotation(tokenKey(audience))] = tok
				kept++
			}
		}
		if kept == len(want) {
			desired.Annotations[annotationTokenRefresh] = h.Annotations[annotationTokenRefresh]
			return nil
		}
	}
	tokens, refresh, err := s.requestTokens(ctx, v, want)
	if err != nil {
		return err
	}
	for k, tok := range tokens {
		desired.Annotations[tokenAnnotation(k)] = tok
	}
	desired.Annotations[annotationTokenRefresh] = refresh.UTC().Format(time.RFC3339)
	s.renewAt(v, desired.Annotations[annotationTokenRefresh])
	return nil
}

// ensureTokenSecret keeps, with Options.TokenSecrets, the host Secret with
// the pod's virtual service account tokens current, renewed when due. The
// Secret is owned by the host pod, so the host removes it with the pod.
func (s *Syncer) ensureTokenSecret(ctx context.Context, v, h *corev1.Pod) error {
	want := tokenLives(v)
	if !s.opts.TokenSecrets || len(want) == 0 || h == nil {
		return nil
	}
	name := s.tokenSecretName(v.Namespace, v.Name)
	cur, err := notFound(s.hInf.Core().V1().Secrets().Lister().Secrets(s.opts.HostNamespace).Get(name))
	if err != nil {
		return err
	}
	if cur != nil {
		s.tokensWritten.Delete(name)
	} else if wait := s.informerWait(&s.tokensWritten, name, v.UID); wait > 0 {
		// The informer has not yet shown the Secret a sync of a moment ago
		// made; a token requested again now would replace a fresh one. Past
		// the lag allowed, it is made again.
		s.pods.queue.AddAfter(v.Namespace+"/"+v.Name, wait)
		return nil
	}
	if cur != nil && cur.Annotations[AnnotationUID] == string(v.UID) && s.renewAt(v, cur.Annotations[annotationTokenRefresh]) {
		return nil
	}
	tokens, refresh, err := s.requestTokens(ctx, v, want)
	if err != nil {
		return err
	}
	data := map[string][]byte{}
	for k, tok := range tokens {
		data[k] = []byte(tok)
	}
	desired := &corev1.Secret{
		ObjectMeta: s.hostMeta(kindToken, v, nil, map[string]string{annotationTokenRefresh: refresh.UTC().Format(time.RFC3339)}),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	desired.Name = name
	desired.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: h.Name, UID: h.UID}}
	_, err = ensureHost(ctx, s, s.host.CoreV1().Secrets(s.opts.HostNamespace), kindToken, cur, desired, func(cur, d *corev1.Secret) bool {
		cur.Data, cur.OwnerReferences = d.Data, d.OwnerReferences
		return true
	})
	if err == nil {
		s.tokensWritten.Store(name, recentWrite{uid: v.UID, at: s.opts.Clock.Now()})
		s.renewAt(v, desired.Annotations[annotationTokenRefresh])
	}
	return s.reportClash(err, v)
}

var podKind = hostKind{
	resource: "pods",
	list:     func(c kubernetes.Interface, ns string) listFunc { return lister(c.CoreV1().Pods(ns).List) },
	// At once: the virtual cluster that would wait for them is going.
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.CoreV1().Pods(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, sel)
	},
	setup:    (*Syncer).setupPods,
	informer: func(s *Syncer) cache.SharedIndexInformer { return s.vInf.Core().V1().Pods().Informer() },
}
