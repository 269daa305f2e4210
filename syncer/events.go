package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func (s *Syncer) setupEvents() error {
	s.events = s.newController("events", 2, s.syncEvent)
	// No deletions: an Event that expires on the host expires in the virtual
	// cluster on its own.
	add := func(obj any) {
		if e, ok := obj.(*corev1.Event); ok {
			s.events.byKey(e)
		}
	}
	// A resync's updates change nothing: an Event copied once stays copied.
	changed := func(old, cur any) {
		o, _ := old.(*corev1.Event)
		c, _ := cur.(*corev1.Event)
		if o == nil || c == nil || o.ResourceVersion != c.ResourceVersion {
			add(cur)
		}
	}
	_, err := s.hEvt.Core().V1().Events().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: changed,
	})
	return err
}

// syncEvent copies a host Event about one of the syncer's objects up to the
// virtual object, with host names turned back into virtual ones. The virtual
// Event's name derives from the host Event's, so copying it again updates
// rather than duplicates it.
func (s *Syncer) syncEvent(ctx context.Context, key string) error {
	_, name := splitKey(key)
	e, err := notFound(s.hEvt.Core().V1().Events().Lister().Events(s.opts.HostNamespace).Get(name))
	if err != nil || e == nil {
		return err
	}
	obj, err := s.hostObject(ctx, e.InvolvedObject)
	if err != nil || obj == nil || !s.owns(obj) {
		return err
	}
	a := obj.GetAnnotations()
	vns, vname := a[AnnotationNS], a[AnnotationName]
	hostRef := s.opts.HostNamespace + "/" + e.InvolvedObject.Name
	msg := strings.ReplaceAll(e.Message, hostRef, vns+"/"+vname)
	msg = strings.ReplaceAll(msg, e.InvolvedObject.Name, vname)
	ve := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: vname + strings.TrimPrefix(e.Name, e.InvolvedObject.Name), Namespace: vns},
		InvolvedObject: corev1.ObjectReference{
			Kind: e.InvolvedObject.Kind, APIVersion: e.InvolvedObject.APIVersion, Namespace: vns, Name: vname,
			UID: types.UID(a[AnnotationUID]), FieldPath: e.InvolvedObject.FieldPath,
		},
		Reason: e.Reason, Message: msg, Type: e.Type, Source: e.Source, Count: e.Count,
		FirstTimestamp: e.FirstTimestamp, LastTimestamp: e.LastTimestamp, EventTime: e.EventTime,
		Series: e.Series, Action: e.Action, ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
	}
	if ve.Name == vname {
		ve.Name = vname + "." + string(e.UID)
	}
	// Created first: most host Events are new, and a read before every
	// copy would double the virtual apiserver's requests for them.
	api := s.virtual.CoreV1().Events(vns)
	_, err = api.Create(ctx, ve, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil // the virtual namespace is going away
	}
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := api.Get(ctx, ve.Name, metav1.GetOptions{})
	if err != nil {
		return err // gone since (expired): made again when retried
	}
	if cur.Count == ve.Count && cur.Message == ve.Message && equality.Semantic.DeepEqual(cur.Series, ve.Series) && cur.LastTimestamp.Equal(&ve.LastTimestamp) {
		return nil
	}
	cur.Count, cur.Message, cur.LastTimestamp, cur.Series = ve.Count, ve.Message, ve.LastTimestamp, ve.Series
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return ignoreGone(err)
}

// hostObject is the host object an Event is about, if it is of a kind the
// syncer copies up events for. One not in the informers' cache yet is asked
// of the host: an Event can arrive before the object it is about (the
// scheduler's Scheduled right after the pod is made), and would be lost.
func (s *Syncer) hostObject(ctx context.Context, ref corev1.ObjectReference) (metav1.Object, error) {
	if ref.Namespace != s.opts.HostNamespace {
		return nil, nil
	}
	core, api := s.hInf.Core().V1(), s.host.CoreV1()
	var obj metav1.Object
	var err error
	switch ref.Kind {
	case "Pod":
		if obj, err = core.Pods().Lister().Pods(ref.Namespace).Get(ref.Name); apierrors.IsNotFound(err) {
			obj, err = api.Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		}
	case "Service":
		if obj, err = core.Services().Lister().Services(ref.Namespace).Get(ref.Name); apierrors.IsNotFound(err) {
			obj, err = api.Services(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		}
	case "PersistentVolumeClaim":
		if obj, err = core.PersistentVolumeClaims().Lister().PersistentVolumeClaims(ref.Namespace).Get(ref.Name); apierrors.IsNotFound(err) {
			obj, err = api.PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		}
	default:
		return nil, nil
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// SimulatedContainerPrefix begins the container ID of every run of a
// container on a simulated node of the embedded host.
const SimulatedContainerPrefix = "vmatrix://"

// AnnotationStartEvents on a host pod says that its syncer writes the events
// of each simulated run's start (Pulled, Created, Started) straight into the
// virtual cluster, as it copies up the status that shows the run, and that
// the simulated kubelet is to leave them out: written once there rather than
// on the host and again as a copy, they were three of a pod's seven host
// writes. A pod of a syncer from before it keeps the kubelet's.
const AnnotationStartEvents = "vmatrix.io/start-events"

// startEvents writes the start events of each simulated run that the host
// pod h shows and the virtual pod v does not yet, as a kubelet writes them:
// on the container, from the kubelet of the pod's node. A run the syncer
// never saw (it was down) gets none. Their names derive from the run, so a
// retry or another syncer never writes one twice. They are what a kubelet's
// are, best effort: one the virtual apiserver refuses is left out rather than
// holding up the status.
func (s *Syncer) startEvents(ctx context.Context, v, h *corev1.Pod) error {
	seen, known := map[string]bool{}, map[string]bool{} // runs; containers with a run
	for _, cs := range slices.Concat(v.Status.InitContainerStatuses, v.Status.ContainerStatuses, v.Status.EphemeralContainerStatuses) {
		seen[cs.ContainerID] = true
		known[cs.Name] = strings.HasPrefix(cs.ContainerID, SimulatedContainerPrefix)
	}
	var events []*corev1.Event
	add := func(cs corev1.ContainerStatus, fieldPath string, ord int) {
		id, ok := strings.CutPrefix(cs.ContainerID, SimulatedContainerPrefix)
		if !ok || seen[cs.ContainerID] {
			return
		}
		var at metav1.Time
		switch {
		case cs.State.Running != nil:
			at = cs.State.Running.StartedAt
		case cs.State.Terminated != nil:
			at = cs.State.Terminated.StartedAt
		case cs.LastTerminationState.Terminated != nil: // in back-off after it
			at = cs.LastTerminationState.Terminated.StartedAt
		default:
			return // when it started is not told: its name could not be the same twice
		}
		reasons := [][2]string{
			{"Pulled", fmt.Sprintf("Container image %q already present on machine", cs.Image)},
			{"Created", "Created container: " + cs.Name},
			{"Started", "Started container " + cs.Name},
		}
		for i, r := range reasons {
			if i == 0 && known[cs.Name] {
				continue // Pulled only before its first run the virtual cluster hears of
			}
			// <pod>.<hex of a time in ns>, as a kubelet names them, lists
			// them in the order told (kubectl describe keeps that order
			// among events of one second): in the last millisecond of the
			// run's start second, after the Scheduled event and a Killing
			// of that second, by the run's number, then the container's
			// place in the pod. Then a hash of the run and reason: the
			// run's ID holds the host pod's UID, so a pod made again under
			// the name gets its own; a retry, the same.
			place := int(cs.RestartCount%16)*60 + ord*len(reasons) + i
			when := at.Truncate(time.Second).Add(time.Second - time.Millisecond + time.Duration(place)*time.Microsecond)
			sum := sha256.Sum256([]byte(id + "/" + r[0]))
			name := fmt.Sprintf("%s.%x%s", strings.TrimRight(v.Name[:min(len(v.Name), 220)], "-."), when.UnixNano(), hex.EncodeToString(sum[:4]))
			events = append(events, &corev1.Event{
				ObjectMeta: metav1.ObjectMeta{Namespace: v.Namespace, Name: name},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: v.Namespace, Name: v.Name,
					UID: v.UID, FieldPath: fieldPath + "{" + cs.Name + "}"},
				Reason: r[0], Message: r[1], Type: corev1.EventTypeNormal,
				Source:         corev1.EventSource{Component: "kubelet", Host: h.Spec.NodeName},
				FirstTimestamp: at, LastTimestamp: at, Count: 1,
				ReportingController: "kubelet", ReportingInstance: h.Spec.NodeName,
			})
		}
	}
	ord := 0
	for _, kind := range []struct {
		fieldPath string
		statuses  []corev1.ContainerStatus
	}{
		{"spec.initContainers", h.Status.InitContainerStatuses},
		{"spec.containers", h.Status.ContainerStatuses},
		{"spec.ephemeralContainers", h.Status.EphemeralContainerStatuses},
	} {
		for _, cs := range kind.statuses {
			add(cs, kind.fieldPath, min(ord, 19)) // at most a millisecond in all
			ord++
		}
	}
	for _, e := range events {
		_, err := s.virtual.CoreV1().Events(v.Namespace).Create(ctx, e, metav1.CreateOptions{})
		switch {
		case err == nil, apierrors.IsAlreadyExists(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			return nil // the virtual namespace is going away
		default:
			return err
		}
	}
	return nil
}
