package syncer

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestMergeMetaThreeWay: a label or annotation removed from the virtual
// object goes from the host copy too; what the host side added stays.
func TestMergeMetaThreeWay(t *testing.T) {
	first := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app": "web", "tier": "front"},
		Annotations: map[string]string{"note": "x", AnnotationName: "web"},
	}}
	recordWritten(first)
	host := first.DeepCopy()
	// The host side adds its own.
	host.Labels["host-added"] = "1"
	host.Annotations["host-note"] = "y"

	// The virtual object loses tier and note.
	next := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{AnnotationName: "web"},
	}}
	recordWritten(next)
	if !mergeMeta(host, next) {
		t.Fatal("mergeMeta saw no change")
	}
	if want := map[string]string{"app": "web", "host-added": "1"}; !maps.Equal(host.Labels, want) {
		t.Errorf("labels %v, want %v", host.Labels, want)
	}
	if _, ok := host.Annotations["note"]; ok {
		t.Errorf("annotation note removed on the virtual side stays on the host: %v", host.Annotations)
	}
	if host.Annotations["host-note"] != "y" || host.Annotations[AnnotationName] != "web" {
		t.Errorf("annotations %v lost what should stay", host.Annotations)
	}
	if mergeMeta(host, next) {
		t.Error("a second merge of the same wish changed something")
	}
}

// TestIsAllocated reads the host's refusal of a Service from its causes, not
// its message.
func TestIsAllocated(t *testing.T) {
	gk := schema.GroupKind{Kind: "Service"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{"10.96.0.10"}, "failed to allocate IP 10.96.0.10: provided IP is already allocated")}), true},
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), 30080, "provided port is already allocated")}), true},
		{apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "selector"), "x", "already allocated")}), false},
		{apierrors.NewAlreadyExists(schema.GroupResource{Resource: "services"}, "web"), false},
		{nil, false},
	} {
		if got := isAllocated(tc.err); got != tc.want {
			t.Errorf("isAllocated(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
