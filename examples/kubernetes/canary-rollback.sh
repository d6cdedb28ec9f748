#!/bin/sh
# steps.rollback of checkout-canary.yaml: every request back on the stable Deployment, which
# goes back to FLOTILLA_PREVIOUS_VERSION if the failed release had reached it (after 100%).
set -eu
ns=checkout
kubectl -n "$ns" annotate ingress/checkout-canary --overwrite \
  nginx.ingress.kubernetes.io/canary-weight=0
if [ -n "$FLOTILLA_PREVIOUS_VERSION" ]; then
  image="registry.example.com/checkout:$FLOTILLA_PREVIOUS_VERSION"
  kubectl -n "$ns" set image deployment/checkout "checkout=$image"
  kubectl -n "$ns" label deployment/checkout --overwrite "version=$FLOTILLA_PREVIOUS_VERSION"
  kubectl -n "$ns" rollout status deployment/checkout --timeout=300s
fi
kubectl -n "$ns" scale deployment/checkout-canary --replicas=0
echo "checkout back on ${FLOTILLA_PREVIOUS_VERSION:-the stable Deployment} on $FLOTILLA_CLUSTER"
