// Package operator is a small controller-runtime operator, the example of
// moving an envtest suite to vmatrix: a WebApp custom resource in two API
// versions with a conversion webhook, a reconciler that runs each WebApp as a
// Deployment and a Service and reports their status, and a mutating and a
// validating webhook.
package operator

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/conversion"
)

// Group is the API group of WebApp.
const Group = "apps.example.vmatrix.io"

var (
	// V1 serves WebApp with spec.size; V2, the stored version, calls it
	// spec.replicas. The conversion webhook translates.
	V1 = schema.GroupVersion{Group: Group, Version: "v1"}
	V2 = schema.GroupVersion{Group: Group, Version: "v2"}
)

// WebApp is the v2 form, the hub the other versions convert through.
type WebApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WebAppSpec   `json:"spec"`
	Status            WebAppStatus `json:"status,omitempty"`
}

// WebAppSpec says what to run.
type WebAppSpec struct {
	Image    string `json:"image,omitempty"`
	Replicas int32  `json:"replicas"`
}

// WebAppStatus says how it runs.
type WebAppStatus struct {
	AvailableReplicas int32              `json:"availableReplicas,omitempty"`
	Conditions        []metav1.Condition `json:"conditions,omitempty"`
}

// WebAppList is a list of v2 WebApps.
type WebAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebApp `json:"items"`
}

// WebAppV1 is the v1 form: the replica count was called size.
type WebAppV1 struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WebAppV1Spec `json:"spec"`
	Status            WebAppStatus `json:"status,omitempty"`
}

// WebAppV1Spec is v1's spec.
type WebAppV1Spec struct {
	Image string `json:"image,omitempty"`
	Size  int32  `json:"size"`
}

// WebAppV1List is a list of v1 WebApps.
type WebAppV1List struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebAppV1 `json:"items"`
}

// AddToScheme registers both versions.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypeWithName(V2.WithKind("WebApp"), &WebApp{})
	s.AddKnownTypeWithName(V2.WithKind("WebAppList"), &WebAppList{})
	s.AddKnownTypeWithName(V1.WithKind("WebApp"), &WebAppV1{})
	s.AddKnownTypeWithName(V1.WithKind("WebAppList"), &WebAppV1List{})
	metav1.AddToGroupVersion(s, V1)
	metav1.AddToGroupVersion(s, V2)
	return nil
}

// Hub marks v2 as the conversion hub.
func (*WebApp) Hub() {}

// ConvertTo converts this v1 WebApp to the hub.
func (w *WebAppV1) ConvertTo(dst conversion.Hub) error {
	hub, ok := dst.(*WebApp)
	if !ok {
		return fmt.Errorf("cannot convert to %T", dst)
	}
	hub.ObjectMeta = w.ObjectMeta
	hub.Spec = WebAppSpec{Image: w.Spec.Image, Replicas: w.Spec.Size}
	hub.Status = w.Status
	return nil
}

// ConvertFrom converts the hub to this v1 WebApp.
func (w *WebAppV1) ConvertFrom(src conversion.Hub) error {
	hub, ok := src.(*WebApp)
	if !ok {
		return fmt.Errorf("cannot convert from %T", src)
	}
	w.ObjectMeta = hub.ObjectMeta
	w.Spec = WebAppV1Spec{Image: hub.Spec.Image, Size: hub.Spec.Replicas}
	w.Status = hub.Status
	return nil
}

// Deep copies, as controller-gen would write them.

func (s *WebAppStatus) deepCopy() WebAppStatus {
	out := *s
	if s.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(s.Conditions))
		for i := range s.Conditions {
			s.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
	return out
}

func (w *WebApp) DeepCopyObject() runtime.Object {
	out := &WebApp{TypeMeta: w.TypeMeta, Spec: w.Spec, Status: w.Status.deepCopy()}
	w.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

func (w *WebAppV1) DeepCopyObject() runtime.Object {
	out := &WebAppV1{TypeMeta: w.TypeMeta, Spec: w.Spec, Status: w.Status.deepCopy()}
	w.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

func (l *WebAppList) DeepCopyObject() runtime.Object {
	out := &WebAppList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*WebApp))
	}
	return out
}

func (l *WebAppV1List) DeepCopyObject() runtime.Object {
	out := &WebAppV1List{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*WebAppV1))
	}
	return out
}
