#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Parses Prometheus text exposition on stdin with the reference Python
# client's parser (Debian's python3-prometheus-client) and prints, as JSON,
# every family it found in order, with its type and number of samples: a
# family whose samples are split by another family's header comes out twice.
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = [{"name": f.name, "type": f.type, "samples": len(f.samples)}
            for f in text_string_to_metric_families(sys.stdin.read())]
print(json.dumps(families))
