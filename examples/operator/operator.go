package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/controller-runtime/pkg/webhook/conversion"
)

// DefaultImage is what the mutating webhook gives a WebApp without an image.
const DefaultImage = "registry.example/webapp:1"

// MaxReplicas is the most the validating webhook lets a WebApp ask for.
const MaxReplicas = 10

// ManagedLabel is the label the mutating webhook puts on every WebApp.
const ManagedLabel = Group + "/defaulted"

// Webhook paths, as the manifests in config/webhook name them.
const (
	MutatePath   = "/mutate-webapp"
	ValidatePath = "/validate-webapp"
	ConvertPath  = "/convert"
)

// NewScheme is the scheme of the operator: the built-in kinds and WebApp.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// SetupController adds the WebApp reconciler to a manager.
func SetupController(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&WebApp{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(&Reconciler{Client: mgr.GetClient()})
}

// RegisterWebhooks serves the mutating, validating and conversion webhooks
// on a webhook server.
func RegisterWebhooks(server webhook.Server, scheme *runtime.Scheme) {
	decoder := admission.NewDecoder(scheme)
	server.Register(MutatePath, &webhook.Admission{Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		var w WebApp
		if err := decoder.Decode(req, &w); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if w.Spec.Image == "" {
			w.Spec.Image = DefaultImage
		}
		if w.Labels == nil {
			w.Labels = map[string]string{}
		}
		w.Labels[ManagedLabel] = "true"
		raw, err := json.Marshal(&w)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, raw)
	})})
	server.Register(ValidatePath, &webhook.Admission{Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		var w WebApp
		if err := decoder.Decode(req, &w); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if w.Spec.Replicas < 0 || w.Spec.Replicas > MaxReplicas {
			return admission.Denied(fmt.Sprintf("spec.replicas %d: a WebApp runs 0 to %d replicas", w.Spec.Replicas, MaxReplicas))
		}
		return admission.Allowed("")
	})})
	server.Register(ConvertPath, conversion.NewWebhookHandler(scheme, conversion.NewRegistry()))
}

// Reconciler runs each WebApp as a Deployment and a Service of its name and
// reports the Deployment's available replicas.
type Reconciler struct {
	client.Client
}

// Reconcile makes the Deployment and Service match the WebApp.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var w WebApp
	if err := r.Get(ctx, req.NamespacedName, &w); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	labels := map[string]string{"app": w.Name}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, dep, func() error {
		replicas := w.Spec.Replicas
		dep.Spec.Replicas = &replicas
		dep.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
		dep.Spec.Template.Labels = labels
		dep.Spec.Template.Spec.Containers = []corev1.Container{{Name: "web", Image: w.Spec.Image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
		return controllerutil.SetControllerReference(&w, dep, r.Scheme())
	}); err != nil {
		return ctrl.Result{}, err
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, svc, func() error {
		svc.Spec.Selector = labels
		svc.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}
		return controllerutil.SetControllerReference(&w, svc, r.Scheme())
	}); err != nil {
		return ctrl.Result{}, err
	}
	status := metav1.ConditionFalse
	if dep.Status.AvailableReplicas == w.Spec.Replicas && dep.Status.ObservedGeneration == dep.Generation {
		status = metav1.ConditionTrue
	}
	w.Status.AvailableReplicas = dep.Status.AvailableReplicas
	meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{
		Type: "Available", Status: status, Reason: "Deployment", ObservedGeneration: w.Generation,
		Message: fmt.Sprintf("%d of %d replicas available", dep.Status.AvailableReplicas, w.Spec.Replicas),
	})
	if err := r.Status().Update(ctx, &w); err != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}
