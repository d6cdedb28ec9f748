#!/bin/sh
# steps.apply of checkout-canary.yaml: run once per canary step. The canary Deployment gets the
# new image, and the ingress (ingress-nginx's canary annotations) sends FLOTILLA_WEIGHT percent
# of the requests to it. At 100% the stable Deployment takes the new image too, and the canary
# goes back to 0% once the stable pods are ready, so the next release starts from a clean pair.
set -eu
ns=checkout
image="registry.example.com/checkout:$FLOTILLA_VERSION"

kubectl -n "$ns" set image deployment/checkout-canary "checkout=$image"
kubectl -n "$ns" label deployment/checkout-canary --overwrite "version=$FLOTILLA_VERSION"
kubectl -n "$ns" rollout status deployment/checkout-canary --timeout=120s

if [ "$FLOTILLA_WEIGHT" -lt 100 ]; then
  kubectl -n "$ns" annotate ingress/checkout-canary --overwrite \
    nginx.ingress.kubernetes.io/canary=true \
    "nginx.ingress.kubernetes.io/canary-weight=$FLOTILLA_WEIGHT"
else
  kubectl -n "$ns" annotate ingress/checkout-canary --overwrite \
    nginx.ingress.kubernetes.io/canary-weight=100
  kubectl -n "$ns" set image deployment/checkout "checkout=$image"
  kubectl -n "$ns" label deployment/checkout --overwrite "version=$FLOTILLA_VERSION"
  kubectl -n "$ns" rollout status deployment/checkout --timeout=300s
  kubectl -n "$ns" annotate ingress/checkout-canary --overwrite \
    nginx.ingress.kubernetes.io/canary-weight=0
fi
echo "checkout $FLOTILLA_VERSION at $FLOTILLA_WEIGHT% on $FLOTILLA_CLUSTER"
