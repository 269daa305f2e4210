package syncer

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Labels and annotations on every host object the syncer writes. The labels
// make the syncer's host informers and its teardown select exactly its own
// objects; the annotations lead from a host object back to its virtual one.
// A host object without them is not the syncer's, and it never changes or
// deletes it.
const (
	Prefix           = "vmatrix.io/"         // of every label and annotation the syncer writes
	LabelManagedBy   = Prefix + "managed-by" // value: the virtual cluster's name
	LabelNamespace   = Prefix + "namespace"  // value: the virtual namespace
	AnnotationName   = Prefix + "object-name"
	AnnotationNS     = Prefix + "object-namespace"
	AnnotationUID    = Prefix + "object-uid"
	AnnotationKind   = Prefix + "object-kind"
	maxHostNameLen   = 63
	hashedPrefixLen  = 52
	hashedSuffixHexs = 10
)

// HostName is the host name of the virtual object name in namespace of
// virtual cluster vcluster: <name>-x-<namespace>-x-<vcluster>. Past 63
// characters (the limit of a DNS label, which Services and Pod hostnames
// need) it is the first 52 characters, "-" and the first 10 hex digits of the
// SHA-256 of the full name, so distinct long names stay distinct.
func HostName(name, namespace, vcluster string) string {
	full := name + "-x-" + namespace + "-x-" + vcluster
	if len(full) <= maxHostNameLen {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:hashedPrefixLen] + "-" + hex.EncodeToString(sum[:])[:hashedSuffixHexs]
}

// VirtualName is the virtual name that HostName made host name from, in
// namespace of vcluster; a name HostName shortened, or not of this form,
// comes back as it is.
func VirtualName(host, namespace, vcluster string) string {
	return strings.TrimSuffix(host, "-x-"+namespace+"-x-"+vcluster)
}

// hostName translates a name of a virtual namespace for this syncer.
func (s *Syncer) hostName(namespace, name string) string {
	return HostName(name, namespace, s.opts.Name)
}

// hostMeta is the metadata of the host copy of a virtual object of kind:
// translated name, the syncer's namespace, extra labels plus the ownership
// labels, and the ownership annotations.
func (s *Syncer) hostMeta(kind string, v metav1.Object, extraLabels, extraAnnotations map[string]string) metav1.ObjectMeta {
	l := map[string]string{}
	for k, val := range extraLabels {
		l[k] = val
	}
	l[LabelManagedBy] = s.opts.Name
	l[LabelNamespace] = v.GetNamespace()
	a := map[string]string{}
	for k, val := range extraAnnotations {
		a[k] = val
	}
	a[AnnotationName] = v.GetName()
	a[AnnotationNS] = v.GetNamespace()
	a[AnnotationUID] = string(v.GetUID())
	a[AnnotationKind] = kind
	return metav1.ObjectMeta{
		Name: s.hostName(v.GetNamespace(), v.GetName()), Namespace: s.opts.HostNamespace,
		Labels: l, Annotations: a,
	}
}

// owns reports whether a host object is this syncer's: only those may be
// changed or deleted.
func (s *Syncer) owns(h metav1.Object) bool {
	return h.GetLabels()[LabelManagedBy] == s.opts.Name && h.GetAnnotations()[AnnotationName] != ""
}

// ownedKind reports whether a host object is this syncer's copy of kind.
func (s *Syncer) ownedKind(h metav1.Object, kind string) bool {
	return s.owns(h) && h.GetAnnotations()[AnnotationKind] == kind
}

// virtualKey is the work-queue key ("namespace/name") of the virtual object a
// host object copies, and false for a host object that is not the syncer's.
func (s *Syncer) virtualKey(h metav1.Object) (string, bool) {
	if !s.owns(h) {
		return "", false
	}
	a := h.GetAnnotations()
	return a[AnnotationNS] + "/" + a[AnnotationName], true
}

// hostSelector is the selector of host objects that copy objects of virtual
// namespace, matching what hostMeta writes. A Service's selector gets these
// terms so that it selects only this virtual namespace's pods.
func (s *Syncer) hostSelector(virtual map[string]string, namespace string) map[string]string {
	sel := map[string]string{}
	for k, v := range virtual {
		sel[k] = v
	}
	sel[LabelManagedBy] = s.opts.Name
	sel[LabelNamespace] = namespace
	return sel
}

// ownedSelector selects every host object of this syncer.
func (s *Syncer) ownedSelector() string {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: s.opts.Name}).String()
}

// tokenSecretName is the host Secret that carries the virtual service account
// tokens of a pod.
func (s *Syncer) tokenSecretName(namespace, pod string) string {
	return s.hostName(namespace, pod+"-sa-token")
}
