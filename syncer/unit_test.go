package syncer

// The translation rules of the package documentation, checked on objects
// alone: no server, no binary. `go test -short ./syncer/` runs these only.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// kindOf is the kind of each resource of hostKinds, for the fake's lists.
var kindOf = map[string]schema.GroupVersionKind{
	"pods": corev1.SchemeGroupVersion.WithKind("Pod"), "services": corev1.SchemeGroupVersion.WithKind("Service"),
	"endpoints": corev1.SchemeGroupVersion.WithKind("Endpoints"), "configmaps": corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	"secrets": corev1.SchemeGroupVersion.WithKind("Secret"), "persistentvolumeclaims": corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"),
	"ingresses": networkingv1.SchemeGroupVersion.WithKind("Ingress"), "networkpolicies": networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
}

func unitSyncer() *Syncer {
	return &Syncer{opts: Options{Name: "vc", HostNamespace: "vmatrix-vc"}}
}

// hostOf is the host name of name in the virtual namespace "shop".
func hostOf(name string) string { return HostName(name, "shop", "vc") }

func TestUnitTranslatePodRenamesEveryReference(t *testing.T) {
	s := unitSyncer()
	v := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			Volumes: []corev1.Volume{
				{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
				{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "pconf"}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "psec"}}},
				}}}},
			},
			Containers: []corev1.Container{{
				Name:    "c",
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "envconf"}}}, {SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "envsec"}}}},
				Env: []corev1.EnvVar{
					{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "keyconf"}, Key: "k"}}},
					{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "keysec"}, Key: "k"}}},
				},
			}},
			InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "initconf"}}}}}},
		},
	}
	h := s.translatePod(v)
	if h.Name != hostOf("web") || h.Namespace != "vmatrix-vc" {
		t.Errorf("host pod %s/%s", h.Namespace, h.Name)
	}
	if h.Labels["app"] != "web" || h.Labels[LabelManagedBy] != "vc" || h.Labels[LabelNamespace] != "shop" {
		t.Errorf("labels %v", h.Labels)
	}
	if h.Annotations[AnnotationName] != "web" || h.Annotations[AnnotationNS] != "shop" || h.Annotations[AnnotationUID] != "u1" || h.Annotations[AnnotationKind] != kindPod {
		t.Errorf("annotations %v", h.Annotations)
	}
	got := map[string]string{
		"pull":     h.Spec.ImagePullSecrets[0].Name,
		"conf":     h.Spec.Volumes[0].ConfigMap.Name,
		"creds":    h.Spec.Volumes[1].Secret.SecretName,
		"data":     h.Spec.Volumes[2].PersistentVolumeClaim.ClaimName,
		"pconf":    h.Spec.Volumes[3].Projected.Sources[0].ConfigMap.Name,
		"psec":     h.Spec.Volumes[3].Projected.Sources[1].Secret.Name,
		"envconf":  h.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name,
		"envsec":   h.Spec.Containers[0].EnvFrom[1].SecretRef.Name,
		"keyconf":  h.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name,
		"keysec":   h.Spec.Containers[0].Env[1].ValueFrom.SecretKeyRef.Name,
		"initconf": h.Spec.InitContainers[0].EnvFrom[0].ConfigMapRef.Name,
	}
	for virtual, host := range got {
		if host != hostOf(virtual) {
			t.Errorf("reference to %q became %q, want %q", virtual, host, hostOf(virtual))
		}
	}
	// The virtual pod is untouched.
	if v.Spec.Volumes[0].ConfigMap.Name != "conf" {
		t.Error("translatePod changed the virtual pod")
	}
	// The references a pod has are the ones the index finds.
	cms, secrets := podRefs(v)
	slices.Sort(cms)
	slices.Sort(secrets)
	if want := []string{"shop/conf", "shop/envconf", "shop/initconf", "shop/keyconf", "shop/pconf"}; !slices.Equal(cms, want) {
		t.Errorf("config map refs %v, want %v", cms, want)
	}
	if want := []string{"shop/creds", "shop/envsec", "shop/keysec", "shop/psec", "shop/pull"}; !slices.Equal(secrets, want) {
		t.Errorf("secret refs %v, want %v", secrets, want)
	}
}

func TestUnitTranslatePodHostFields(t *testing.T) {
	s := unitSyncer()
	prio := int32(1000)
	v := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
		Spec: corev1.PodSpec{
			NodeName: "virtual-node", ServiceAccountName: "builder", DeprecatedServiceAccount: "builder",
			PriorityClassName: "high", Priority: &prio, Subdomain: "web",
			Overhead:   corev1.ResourceList{},
			Containers: []corev1.Container{{Name: "c"}},
		},
	}
	h := s.translatePod(v)
	spec := h.Spec
	if spec.NodeName != "" {
		t.Errorf("nodeName %q: the host scheduler places the pod", spec.NodeName)
	}
	if a := spec.Affinity; a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		t.Error("the pod is not held to its node")
	}
	if spec.ServiceAccountName != "" || spec.DeprecatedServiceAccount != "" || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("service account %q, automount %v: want the host's default, nothing mounted", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Error("service links stay on: they would name host Services")
	}
	if spec.PriorityClassName != "" || spec.Priority != nil || spec.Overhead != nil {
		t.Errorf("priority %q %v, overhead %v: the virtual cluster's values reach the host", spec.PriorityClassName, spec.Priority, spec.Overhead)
	}
	if spec.Hostname != "web-0" || spec.Subdomain != "" {
		t.Errorf("hostname %q subdomain %q, want the virtual pod's name and none", spec.Hostname, spec.Subdomain)
	}
	// A name that is no DNS label is no hostname.
	v.Name = "web.0"
	if h := s.translatePod(v); h.Spec.Hostname != "" {
		t.Errorf("hostname %q for a pod named web.0", h.Spec.Hostname)
	}
}

func TestUnitTranslatePodTokenAndDownwardAPI(t *testing.T) {
	s := unitSyncer()
	field := func(path string) *corev1.ObjectFieldSelector { return &corev1.ObjectFieldSelector{FieldPath: path} }
	v := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "vault-token"}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: field("metadata.namespace")}}}},
				}}}},
				{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "name", FieldRef: field("metadata.name")},
					{Path: "labels", FieldRef: field("metadata.labels")},
				}}}},
			},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{
				{Name: "UID", ValueFrom: &corev1.EnvVarSource{FieldRef: field("metadata.uid")}},
				{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: field("status.podIP")}},
			}}},
		},
	}
	annotation := func(a string) string { return "metadata.annotations['" + a + "']" }
	// By default each token comes from an annotation of the host pod itself.
	h := s.translatePod(v)
	sources := h.Spec.Volumes[0].Projected.Sources
	for i, want := range []corev1.DownwardAPIVolumeFile{
		{Path: "token", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: annotation("vmatrix.io/token")}},
		{Path: "vault-token", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: annotation("vmatrix.io/" + tokenKey("vault"))}},
	} {
		src := sources[i]
		if src.ServiceAccountToken != nil || src.Secret != nil || src.DownwardAPI == nil || !equality.Semantic.DeepEqual(src.DownwardAPI.Items, []corev1.DownwardAPIVolumeFile{want}) {
			t.Errorf("token source %d: %+v, want the file %+v", i, src, want)
		}
	}
	// With TokenSecrets, from a host Secret of the pod's.
	s.opts.TokenSecrets = true
	secretSources := s.translatePod(v).Spec.Volumes[0].Projected.Sources
	token := hostOf("web-sa-token")
	for i, want := range []corev1.KeyToPath{{Key: "token", Path: "token"}, {Key: tokenKey("vault"), Path: "vault-token"}} {
		src := secretSources[i]
		if src.ServiceAccountToken != nil || src.DownwardAPI != nil || src.Secret == nil || src.Secret.Name != token || !equality.Semantic.DeepEqual(src.Secret.Items, []corev1.KeyToPath{want}) {
			t.Errorf("token Secret source %d: %+v, want the key %q of Secret %s", i, src, want.Key, token)
		}
	}
	if tokenKey("vault") == tokenKey("") || tokenKey("vault") == "token-refresh" {
		t.Error("two audiences, or an audience and the refresh time, share a key")
	}
	for what, pair := range map[string][2]string{
		"projected namespace": {sources[2].DownwardAPI.Items[0].FieldRef.FieldPath, annotation(AnnotationNS)},
		"volume name":         {h.Spec.Volumes[1].DownwardAPI.Items[0].FieldRef.FieldPath, annotation(AnnotationName)},
		"volume labels":       {h.Spec.Volumes[1].DownwardAPI.Items[1].FieldRef.FieldPath, "metadata.labels"},
		"env uid":             {h.Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath, annotation(AnnotationUID)},
		"env pod IP":          {h.Spec.Containers[0].Env[1].ValueFrom.FieldRef.FieldPath, "status.podIP"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: field path %q, want %q", what, pair[0], pair[1])
		}
	}
}

func TestUnitTranslateService(t *testing.T) {
	s := unitSyncer()
	v := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.42", ClusterIPs: []string{"10.96.0.42"},
			Selector: map[string]string{"app": "web"}, HealthCheckNodePort: 31000,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	h := s.translateService(v)
	if h.Name != hostOf("web") || h.Labels["tier"] != "front" || h.Labels[LabelManagedBy] != "vc" {
		t.Errorf("host service %s, labels %v", h.Name, h.Labels)
	}
	// The selector selects the host copies of this virtual namespace's pods.
	want := map[string]string{"app": "web", LabelManagedBy: "vc", LabelNamespace: "shop"}
	if !equality.Semantic.DeepEqual(h.Spec.Selector, want) {
		t.Errorf("selector %v, want %v", h.Spec.Selector, want)
	}
	// Same cluster IP on both sides.
	if h.Spec.ClusterIP != "10.96.0.42" {
		t.Errorf("cluster IP %q", h.Spec.ClusterIP)
	}
	if h.Spec.HealthCheckNodePort != 0 {
		t.Errorf("health check node port %d: the host allocates it", h.Spec.HealthCheckNodePort)
	}
	// A selector-less Service stays selector-less: its Endpoints are copied.
	v.Spec.Selector = nil
	if h := s.translateService(v); h.Spec.Selector != nil {
		t.Errorf("selector %v for a selector-less Service", h.Spec.Selector)
	}
}

func TestUnitMergeServiceKeepsHostNodePorts(t *testing.T) {
	cur := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}}}}
	desired := cur.DeepCopy()
	desired.Spec.Ports[0].NodePort = 0
	if mergeService(cur, desired) {
		t.Error("an unpinned node port counts as a change")
	}
	desired.Spec.Ports = append(desired.Spec.Ports, corev1.ServicePort{Name: "https", Port: 443})
	if !mergeService(cur, desired) || len(cur.Spec.Ports) != 2 || cur.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("after adding a port: %+v", cur.Spec.Ports)
	}
}

// TestUnitHostKinds: the table of host kinds lists, counts and tells foreign
// objects apart for every kind, on a fake clientset.
func TestUnitHostKinds(t *testing.T) {
	ctx := context.Background()
	ns := "vmatrix-vc"
	ours := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelManagedBy: "vc"}, Annotations: map[string]string{AnnotationName: name}}
	}
	theirs := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	objects := []runtime.Object{
		&corev1.Pod{ObjectMeta: ours("p1")}, &corev1.Pod{ObjectMeta: ours("p2")},
		&corev1.Service{ObjectMeta: ours("s")}, &corev1.Endpoints{ObjectMeta: ours("s")},
		&corev1.ConfigMap{ObjectMeta: ours("c")}, &corev1.Secret{ObjectMeta: ours("t")},
		&corev1.PersistentVolumeClaim{ObjectMeta: ours("d")},
		&networkingv1.Ingress{ObjectMeta: ours("i")}, &networkingv1.NetworkPolicy{ObjectMeta: ours("n")},
		// What the host makes in every namespace, and for every Service.
		&corev1.ConfigMap{ObjectMeta: theirs("kube-root-ca.crt")}, &corev1.Endpoints{ObjectMeta: theirs("other")},
	}
	host := fake.NewClientset(objects...)
	// The fake accepts a DeleteCollection and keeps everything: delete what
	// it selects, as a server does.
	host.PrependReactor("delete-collection", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		dc := a.(k8stesting.DeleteCollectionAction)
		sel := dc.GetListRestrictions().Labels
		list, err := host.Tracker().List(a.GetResource(), kindOf[a.GetResource().Resource], a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		items, _ := meta.ExtractList(list)
		for _, o := range items {
			m, _ := meta.Accessor(o)
			if sel.Matches(labels.Set(m.GetLabels())) {
				if err := host.Tracker().Delete(a.GetResource(), a.GetNamespace(), m.GetName()); err != nil {
					return true, nil, err
				}
			}
		}
		return true, nil, nil
	})
	left, err := HostObjects(ctx, host, ns, "vc")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2 pods", "1 services", "1 endpoints", "1 configmaps", "1 secrets", "1 persistentvolumeclaims", "1 ingresses", "1 networkpolicies"}
	if !slices.Equal(left, want) {
		t.Errorf("HostObjects = %v, want %v", left, want)
	}
	s := unitSyncer()
	s.host = host
	if foreign, err := s.foreignObjects(ctx); err != nil || foreign != "" {
		t.Errorf("foreignObjects = %q, %v; want none (only what the host makes)", foreign, err)
	}
	if _, err := host.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: theirs("someone-elses")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if foreign, err := s.foreignObjects(ctx); err != nil || foreign != "secrets/someone-elses" {
		t.Errorf("foreignObjects = %q, %v; want secrets/someone-elses", foreign, err)
	}
	// Delete's deletes reach every kind.
	sel := metav1.ListOptions{LabelSelector: s.ownedSelector()}
	for _, k := range hostKinds {
		if err := k.deleteAll(ctx, s, sel); err != nil {
			t.Errorf("deleting %s: %v", k.resource, err)
		}
	}
	if left, err := HostObjects(ctx, host, ns, "vc"); err != nil || len(left) > 0 {
		t.Errorf("after the deletes: %v, %v", left, err)
	}
}

func TestUnitOptionalKinds(t *testing.T) {
	base := Options{Name: "vc", Virtual: &rest.Config{}, Host: &rest.Config{}}
	s, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	for _, k := range s.syncedKinds() {
		synced = append(synced, k.resource)
	}
	if slices.Contains(synced, "ingresses") || slices.Contains(synced, "networkpolicies") {
		t.Errorf("synced by default: %v", synced)
	}
	base.Sync = []string{"networkpolicies"}
	if s, err = New(base); err != nil {
		t.Fatal(err)
	}
	if n := len(s.syncedKinds()); n != len(synced)+1 {
		t.Errorf("%d kinds with networkpolicies, want %d", n, len(synced)+1)
	}
	base.Sync = []string{"ingress"}
	if _, err := New(base); err == nil || !strings.Contains(err.Error(), "ingresses, networkpolicies") {
		t.Errorf("an unknown kind: %v; want an error naming the optional kinds", err)
	}
}

func TestUnitTranslateIngress(t *testing.T) {
	s := unitSyncer()
	class := "nginx"
	backend := func(svc string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}
	}
	def := backend("fallback")
	v := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class, DefaultBackend: &def,
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"a.example"}, SecretName: "tls"}, {Hosts: []string{"b.example"}}},
			Rules: []networkingv1.IngressRule{{Host: "a.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", Backend: backend("web")}, {Path: "/api", Backend: backend("api")}},
			}}}},
		},
	}
	h := s.translateIngress(v)
	if h.Name != hostOf("web") || h.Annotations["nginx.ingress.kubernetes.io/rewrite-target"] != "/" || *h.Spec.IngressClassName != "nginx" {
		t.Errorf("host ingress %s, annotations %v, class %v", h.Name, h.Annotations, *h.Spec.IngressClassName)
	}
	paths := h.Spec.Rules[0].HTTP.Paths
	for virtual, host := range map[string]string{"fallback": h.Spec.DefaultBackend.Service.Name, "web": paths[0].Backend.Service.Name, "api": paths[1].Backend.Service.Name, "tls": h.Spec.TLS[0].SecretName} {
		if host != hostOf(virtual) {
			t.Errorf("%s became %q, want %q", virtual, host, hostOf(virtual))
		}
	}
	if h.Spec.TLS[1].SecretName != "" {
		t.Errorf("a TLS entry without a Secret got %q", h.Spec.TLS[1].SecretName)
	}
	if keys := ingressSecrets(v); !slices.Equal(keys, []string{"shop/tls"}) {
		t.Errorf("ingressSecrets = %v", keys)
	}
	// Raw controller configuration is refused, unless privileged pods are allowed.
	if key := s.snippet(v); key != "" {
		t.Errorf("snippet(%v) = %q", v.Annotations, key)
	}
	v.Annotations["nginx.ingress.kubernetes.io/configuration-snippet"] = "more_set_headers x"
	if key := s.snippet(v); key != "nginx.ingress.kubernetes.io/configuration-snippet" {
		t.Errorf("snippet = %q, want the configuration-snippet annotation", key)
	}
	s.opts.AllowPrivileged = true
	if key := s.snippet(v); key != "" {
		t.Errorf("snippet with AllowPrivileged = %q", key)
	}
}

func TestUnitTranslateNetworkPolicy(t *testing.T) {
	s := unitSyncer()
	s.vInf = informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	for name, team := range map[string]string{"shop": "a", "shop-b": "a", "other": "b"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": team}}}
		if err := s.vInf.Core().V1().Namespaces().Informer().GetIndexer().Add(ns); err != nil {
			t.Fatal(err)
		}
	}
	v := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "c"}}},
				{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: metav1.LabelSelectorOpIn, Values: []string{"db"}}}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}},
			}}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
		},
	}
	h, err := s.translateNetworkPolicy(v)
	if err != nil {
		t.Fatal(err)
	}
	// Host pod labels of pods in virtual namespaces, to try the selectors on.
	pod := func(ns string, l map[string]string) labels.Set {
		set := labels.Set{LabelManagedBy: "vc", LabelNamespace: ns}
		for k, v := range l {
			set[k] = v
		}
		return set
	}
	picks := func(sel *metav1.LabelSelector, l labels.Set) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(l)
	}
	from, to := h.Spec.Ingress[0].From, h.Spec.Egress[0].To
	for _, tc := range []struct {
		what string
		sel  *metav1.LabelSelector
		pod  labels.Set
		want bool
	}{
		{"the policy, its pod", &h.Spec.PodSelector, pod("shop", map[string]string{"app": "web"}), true},
		{"the policy, a pod of another namespace", &h.Spec.PodSelector, pod("other", map[string]string{"app": "web"}), false},
		{"the policy, another virtual cluster's pod", &h.Spec.PodSelector, labels.Set{LabelManagedBy: "vc2", LabelNamespace: "shop", "app": "web"}, false},
		{"team a, a pod of shop-b", from[0].PodSelector, pod("shop-b", nil), true},
		{"team a, a pod of other", from[0].PodSelector, pod("other", nil), false},
		{"team c (no namespace), a pod of shop", from[1].PodSelector, pod("shop", nil), false},
		{"role in (db), a db pod of shop", from[2].PodSelector, pod("shop", map[string]string{"role": "db"}), true},
		{"role in (db), a db pod of shop-b", from[2].PodSelector, pod("shop-b", map[string]string{"role": "db"}), false},
		{"egress to every pod of shop", to[0].PodSelector, pod("shop", nil), true},
		{"egress to every pod of shop, not of other", to[0].PodSelector, pod("other", nil), false},
	} {
		if got := picks(tc.sel, tc.pod); got != tc.want {
			t.Errorf("%s: picks = %v, want %v (selector %v)", tc.what, got, tc.want, tc.sel)
		}
	}
	for i, p := range from[:3] {
		if p.NamespaceSelector != nil {
			t.Errorf("peer %d keeps a namespace selector: all host copies are in one namespace", i)
		}
	}
	if from[3].IPBlock == nil || from[3].PodSelector != nil {
		t.Errorf("the IP block peer became %+v", from[3])
	}
	if v.Spec.Ingress[0].From[0].NamespaceSelector == nil {
		t.Error("translateNetworkPolicy changed the virtual policy")
	}
}

func TestUnitNodeLabels(t *testing.T) {
	h := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"zone": "a", "disk": "ssd"}}}
	v := virtualNode(h, "vc", "v1.35.4")
	if v.Annotations[annotationHostLabels] != "disk,zone" {
		t.Errorf("host label keys %q", v.Annotations[annotationHostLabels])
	}
	// The virtual cluster adds a label and changes a host one; the host
	// drops one of its own.
	v.Labels["color"], v.Labels["zone"] = "blue", "b"
	delete(h.Labels, "disk")
	got := nodeLabels(v, h, "vc")
	want := map[string]string{"zone": "a", "color": "blue", LabelManagedBy: "vc"}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("labels %v, want %v: the host owns its keys, the virtual cluster the others", got, want)
	}
}

// TestUnitNodeCordon: a cordon made in the virtual cluster stays; the
// host's comes and goes with the host's, and does not end the virtual one.
func TestUnitNodeCordon(t *testing.T) {
	h := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	v := virtualNode(h, "vc", "")
	sync := func() bool {
		var note string
		v.Spec.Unschedulable, note = nodeUnschedulable(v, h)
		if note == "" {
			delete(v.Annotations, annotationHostCordon)
		} else {
			v.Annotations[annotationHostCordon] = note
		}
		return v.Spec.Unschedulable
	}
	if sync() {
		t.Fatal("a new node is cordoned")
	}
	v.Spec.Unschedulable = true // kubectl cordon in the virtual cluster
	if !sync() {
		t.Error("the virtual cordon was undone")
	}
	v.Spec.Unschedulable = false // kubectl uncordon
	h.Spec.Unschedulable = true  // and the host cordons its node
	if !sync() {
		t.Error("the host's cordon does not show")
	}
	h.Spec.Unschedulable = false
	if sync() {
		t.Error("the host's cordon did not end with the host's")
	}
	v.Spec.Unschedulable, h.Spec.Unschedulable = true, true
	sync()
	h.Spec.Unschedulable = false
	if !sync() {
		t.Error("the end of the host's cordon ended the virtual one")
	}
}

// TestUnitNodeVersion: a node KWOK simulates shows a kubelet of the virtual
// cluster's version; a real node its own.
func TestUnitNodeVersion(t *testing.T) {
	real := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"}}}
	simulated := real.DeepCopy()
	simulated.Annotations = map[string]string{SimulatedNodeAnnotation: "fake"}
	if got := virtualNode(real, "vc", "v1.35.4").Status.NodeInfo.KubeletVersion; got != "v1.37.2" {
		t.Errorf("a real node's kubelet shows as %s", got)
	}
	if got := virtualNode(simulated, "vc", "v1.35.4").Status.NodeInfo; got.KubeletVersion != "v1.35.4" || got.KubeProxyVersion != "v1.35.4" {
		t.Errorf("a simulated node's versions show as %s, %s", got.KubeletVersion, got.KubeProxyVersion)
	}
	if got := virtualNode(simulated, "vc", "").Status.NodeInfo.KubeletVersion; got != "v1.37.2" {
		t.Errorf("with the virtual version unknown, a simulated node's kubelet shows as %s", got)
	}
}

func TestUnitNodeTaints(t *testing.T) {
	h := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{
		{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}, {Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute},
		{Key: "old", Effect: corev1.TaintEffectNoSchedule},
	}}}
	v := virtualNode(h, "vc", "v1.35.4")
	if len(v.Spec.Taints) != 2 || v.Annotations[annotationHostTaints] != "gpu:NoSchedule,old:NoSchedule" {
		t.Fatalf("taints %v, annotation %q: want the host's but for not-ready", v.Spec.Taints, v.Annotations[annotationHostTaints])
	}
	// The virtual cluster adds a taint and the apiserver's not-ready one;
	// the host drops one of its own.
	v.Spec.Taints = append(v.Spec.Taints, corev1.Taint{Key: "evict", Effect: corev1.TaintEffectNoExecute}, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
	h.Spec.Taints = h.Spec.Taints[:2]
	got := taintKeys(nodeTaints(v, h))
	if !slices.Equal(got, []string{"gpu:NoSchedule", "evict:NoExecute"}) {
		t.Errorf("taints %v", got)
	}
}

func TestUnitPlacement(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		l := map[string]string{LabelManagedBy: "vc"}
		for k, v := range labels {
			l[k] = v
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
	}
	virtual := []*corev1.Node{node("n0", nil), node("n1", map[string]string{"color": "blue"}), node("n2", map[string]string{"color": "blue", "disk": "ssd"})}
	host := map[string]*corev1.Node{"n0": node("n0", nil), "n1": node("n1", nil), "n2": node("n2", map[string]string{"disk": "ssd"})}
	hostNode := func(name string) *corev1.Node { return host[name] }
	pod := func(selector map[string]string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: selector}}
	}
	for _, c := range []struct {
		selector map[string]string
		names    []string
		differ   bool
	}{
		{map[string]string{"disk": "ssd"}, []string{"n2"}, false},        // same on both sides: the host decides
		{map[string]string{"color": "blue"}, []string{"n1", "n2"}, true}, // virtual labels only
		{map[string]string{"color": "green"}, nil, false},                // no node on either side
		{map[string]string{"color": "blue", "disk": "ssd"}, []string{"n2"}, true},
		{nil, []string{"n0", "n1", "n2"}, false}, // no rules, no taints
	} {
		names, differ := virtualChoice(pod(c.selector), virtual, hostNode, "vc")
		if !slices.Equal(names, c.names) || differ != c.differ {
			t.Errorf("selector %v: nodes %v differ %v, want %v %v", c.selector, names, differ, c.names, c.differ)
		}
	}

	// A taint set in the virtual cluster keeps off the pods that do not
	// tolerate it.
	virtual[0].Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}}
	if names, differ := virtualChoice(pod(nil), virtual, hostNode, "vc"); !slices.Equal(names, []string{"n1", "n2"}) || !differ {
		t.Errorf("a taint on n0: nodes %v, differ %v", names, differ)
	}
	tolerant := pod(nil)
	tolerant.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	if names, differ := virtualChoice(tolerant, virtual, hostNode, "vc"); len(names) != 3 || differ {
		t.Errorf("a pod that tolerates the taint on n0: nodes %v, differ %v", names, differ)
	}
	virtual[0].Spec.Taints = nil
	// A node cordoned in the virtual cluster (kubectl drain) takes only the
	// pods that tolerate it, a DaemonSet's.
	virtual[0].Spec.Unschedulable = true
	if names, differ := virtualChoice(pod(nil), virtual, hostNode, "vc"); !slices.Equal(names, []string{"n1", "n2"}) || !differ {
		t.Errorf("n0 cordoned: nodes %v, differ %v", names, differ)
	}
	daemon := pod(nil)
	daemon.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if names, differ := virtualChoice(daemon, virtual, hostNode, "vc"); len(names) != 3 || differ {
		t.Errorf("a DaemonSet's pod with n0 cordoned: nodes %v, differ %v", names, differ)
	}
	virtual[0].Spec.Unschedulable = false
	// A host node's health taints are the host scheduler's own business.
	host["n1"].Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}}
	if names, differ := virtualChoice(pod(nil), virtual, hostNode, "vc"); len(names) != 3 || differ {
		t.Errorf("memory pressure on host node n1: nodes %v, differ %v", names, differ)
	}
	host["n1"].Spec.Taints = nil

	// A pod pinned to the virtual choice keeps its preferences.
	p := pod(map[string]string{"color": "blue"})
	p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1}}}}
	pinToNodes(&p.Spec, []string{"n1", "n2"})
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if p.Spec.NodeSelector != nil || len(terms) != 2 || terms[1].MatchFields[0].Values[0] != "n2" || len(p.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("pinned spec: selector %v, terms %v", p.Spec.NodeSelector, terms)
	}
	for _, n := range virtual {
		ok, _ := nodeaffinity.GetRequiredNodeAffinity(p).Match(n)
		if ok != (n.Name != "n0") {
			t.Errorf("pinned pod matches %s: %v", n.Name, ok)
		}
	}
	// With no node to go to, it matches none.
	pinToNodes(&p.Spec, nil)
	for _, n := range virtual {
		if ok, _ := nodeaffinity.GetRequiredNodeAffinity(p).Match(n); ok {
			t.Errorf("a pod with no node to go to matches %s", n.Name)
		}
	}

	// A pod that names its node goes to that node; one the host has
	// scheduled is never placed again.
	s := unitSyncer()
	v := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: "n1", NodeSelector: map[string]string{"color": "blue"}}}
	h := s.translatePod(v)
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(h).Match(host["n1"]); !ok || h.Spec.NodeName != "" {
		t.Errorf("a pod on n1: host copy matches n1 %v, node name %q", ok, h.Spec.NodeName)
	}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(h).Match(host["n2"]); ok {
		t.Error("a pod on n1: host copy may go to n2")
	}
	if placementChanged(h, s.translatePod(v)) {
		t.Error("placement changed with nothing changed")
	}
	// Rules the host adds by itself (an admission plugin) are no change.
	h.Spec.NodeSelector = map[string]string{"pool": "tenants"}
	if placementChanged(h, s.translatePod(v)) {
		t.Error("placement changed by a rule the host added")
	}
	v.Spec.NodeName = "n2"
	if !placementChanged(h, s.translatePod(v)) {
		t.Error("placement unchanged with the node changed")
	}
	h.Spec.NodeName = "n1"
	if placementChanged(h, s.translatePod(v)) {
		t.Error("a scheduled host pod placed again")
	}
}

// TestUnitStartEvents: the syncer tells each simulated run's start once, as a
// kubelet does (Pulled only before the first run it hears of), under names
// that are valid for any pod name, list them in order, and differ for a pod
// made again under the same name.
func TestUnitStartEvents(t *testing.T) {
	s := unitSyncer()
	client := fake.NewClientset()
	s.virtual = client
	ctx := context.Background()
	long := strings.Repeat("p", 250)
	v := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long, Namespace: "shop", UID: "v1"}}
	started := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	run := func(hostUID, container string, n int) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: container, Image: "busybox", ContainerID: fmt.Sprintf("%s%s-%s-%d", SimulatedContainerPrefix, hostUID, container, n),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}
	}
	h := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-1"}, Status: corev1.PodStatus{
		InitContainerStatuses: []corev1.ContainerStatus{run("h1", "init", 1)},
		ContainerStatuses:     []corev1.ContainerStatus{run("h1", "web", 1)},
	}}
	events := func() []corev1.Event {
		t.Helper()
		list, err := client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	written := map[string]bool{}
	step := func(what string, want ...string) {
		t.Helper()
		if err := s.startEvents(ctx, v, h); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events() {
			if written[e.Name] {
				continue
			}
			written[e.Name] = true
			got = append(got, e.InvolvedObject.FieldPath+" "+e.Reason)
			if errs := validation.IsDNS1123Subdomain(e.Name); len(errs) > 0 {
				t.Errorf("%s: event name %q: %v", what, e.Name, errs)
			}
			if e.Source.Host != "node-1" || e.InvolvedObject.UID != v.UID || !e.FirstTimestamp.Equal(&started) {
				t.Errorf("%s: %s event from %q about %q at %v", what, e.Reason, e.Source.Host, e.InvolvedObject.UID, e.FirstTimestamp)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: wrote %q, want %q", what, got, want)
		}
		v.Status = *h.Status.DeepCopy() // copied up
	}
	step("first runs", "spec.initContainers{init} Pulled", "spec.initContainers{init} Created", "spec.initContainers{init} Started",
		"spec.containers{web} Pulled", "spec.containers{web} Created", "spec.containers{web} Started")
	// Listed by name, they are in the order a kubelet tells them.
	var order []string
	all := events()
	slices.SortFunc(all, func(a, b corev1.Event) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range all {
		order = append(order, e.InvolvedObject.FieldPath+" "+e.Reason)
	}
	if want := []string{"spec.initContainers{init} Pulled", "spec.initContainers{init} Created", "spec.initContainers{init} Started",
		"spec.containers{web} Pulled", "spec.containers{web} Created", "spec.containers{web} Started"}; !slices.Equal(order, want) {
		t.Errorf("by name: %q, want %q", order, want)
	}
	step("the same status again")
	// The second run, first seen in back-off after it.
	h.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "web", Image: "busybox", ContainerID: SimulatedContainerPrefix + "h1-web-2",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: started}}}
	step("a restart", "spec.containers{web} Created", "spec.containers{web} Started")
	// The pod made again under its name: another host pod, from run 1 again.
	v = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long, Namespace: "shop", UID: "v2"}}
	h.Status.InitContainerStatuses = []corev1.ContainerStatus{run("h2", "init", 1)}
	h.Status.ContainerStatuses = []corev1.ContainerStatus{run("h2", "web", 1)}
	step("the pod made again", "spec.initContainers{init} Pulled", "spec.initContainers{init} Created", "spec.initContainers{init} Started",
		"spec.containers{web} Pulled", "spec.containers{web} Created", "spec.containers{web} Started")
}
