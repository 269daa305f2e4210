package syncer

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

// ConfigMaps and Secrets are copied down only while a virtual pod (or, for a
// Secret, a synced Ingress) refers to one: everything else stays in the
// virtual cluster, where it may hold what the host has no business seeing.
func (s *Syncer) setupConfigMaps() (*controller, error) {
	s.configMaps = s.newController("configmaps", 2, s.syncConfigMap)
	if _, err := s.vInf.Core().V1().ConfigMaps().Informer().AddEventHandler(handler(s.configMaps.byKey)); err != nil {
		return nil, err
	}
	_, err := s.hInf.Core().V1().ConfigMaps().Informer().AddEventHandler(handler(s.configMaps.byVirtualKey(kindConfigMap)))
	return s.configMaps, err
}

func (s *Syncer) setupSecrets() (*controller, error) {
	s.secrets = s.newController("secrets", 2, s.syncSecret)
	if _, err := s.vInf.Core().V1().Secrets().Informer().AddEventHandler(handler(s.secrets.byKey)); err != nil {
		return nil, err
	}
	_, err := s.hInf.Core().V1().Secrets().Informer().AddEventHandler(handler(s.secrets.byVirtualKey(kindSecret)))
	return s.secrets, err
}

// referenced reports whether a virtual pod refers to the object key through
// index.
func (s *Syncer) referenced(index, key string) bool {
	pods, _ := s.vInf.Core().V1().Pods().Informer().GetIndexer().ByIndex(index, key)
	return len(pods) > 0
}

func (s *Syncer) syncConfigMap(ctx context.Context, key string) error {
	_, v, h, err := readBoth[corev1.ConfigMap](s, key, s.vInf.Core().V1().ConfigMaps().Lister().ConfigMaps, s.hInf.Core().V1().ConfigMaps().Lister().ConfigMaps)
	if err != nil {
		return err
	}
	api := s.host.CoreV1().ConfigMaps(s.opts.HostNamespace)
	if v == nil || !s.referenced(indexConfigMaps, key) {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	desired := &corev1.ConfigMap{ObjectMeta: s.hostMeta(kindConfigMap, v, v.Labels, nil), Data: v.Data, BinaryData: v.BinaryData, Immutable: v.Immutable}
	_, err = ensureHost(ctx, s, api, kindConfigMap, h, desired, func(cur, d *corev1.ConfigMap) bool {
		return slices.Contains([]bool{takeField(&cur.Data, d.Data), takeField(&cur.BinaryData, d.BinaryData)}, true)
	})
	return s.reportClash(err, v)
}

func (s *Syncer) syncSecret(ctx context.Context, key string) error {
	_, v, h, err := readBoth[corev1.Secret](s, key, s.vInf.Core().V1().Secrets().Lister().Secrets, s.hInf.Core().V1().Secrets().Lister().Secrets)
	if err != nil {
		return err
	}
	if h != nil && !s.ownedKind(h, kindSecret) {
		h = nil // a pod's token Secret, or not ours: ensureHost reports the clash
	}
	api := s.host.CoreV1().Secrets(s.opts.HostNamespace)
	if v == nil || !s.referenced(indexSecrets, key) && !s.ingressRefers(key) {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	typ := v.Type
	if typ == corev1.SecretTypeServiceAccountToken {
		typ = corev1.SecretTypeOpaque // the host's token controller would fill it with a host token
	}
	desired := &corev1.Secret{ObjectMeta: s.hostMeta(kindSecret, v, v.Labels, nil), Data: v.Data, Type: typ, Immutable: v.Immutable}
	_, err = ensureHost(ctx, s, api, kindSecret, h, desired, func(cur, d *corev1.Secret) bool { return takeField(&cur.Data, d.Data) })
	return s.reportClash(err, v)
}

var configMapKind = hostKind{
	resource: "configmaps",
	list:     func(c kubernetes.Interface, ns string) listFunc { return lister(c.CoreV1().ConfigMaps(ns).List) },
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.CoreV1().ConfigMaps(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	hostMade: func(name string) bool { return name == "kube-root-ca.crt" },
	setup:    (*Syncer).setupConfigMaps,
	informer: func(s *Syncer) cache.SharedIndexInformer { return s.vInf.Core().V1().ConfigMaps().Informer() },
}

var secretKind = hostKind{
	resource: "secrets",
	list:     func(c kubernetes.Interface, ns string) listFunc { return lister(c.CoreV1().Secrets(ns).List) },
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.CoreV1().Secrets(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	setup:    (*Syncer).setupSecrets,
	informer: func(s *Syncer) cache.SharedIndexInformer { return s.vInf.Core().V1().Secrets().Informer() },
}
