"""Apache Airflow provider for the InfinityBlue video generation API.

This module is imported by Airflow's providers manager and by every DAG file that
uses the provider, so it stays free of heavy imports: it only describes the
provider. The hook, operators, sensor and trigger live in their own subpackages.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://api.getinfinityblue.com"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (the ``apache_airflow_provider`` entry point).

    >>> get_provider_info()["connection-types"][0]["connection-type"]
    'infinityblue'
    """
    return {
        "package-name": "airflow-provider-infinityblue",
        "name": "InfinityBlue",
        "description": "Generate videos with the InfinityBlue video generation API from Apache Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "InfinityBlue",
                "external-doc-url": "https://api.getinfinityblue.com",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "InfinityBlue",
                "python-modules": [
                    "airflow_provider_infinityblue.operators.infinityblue",
                    "airflow_provider_infinityblue.operators.download",
                    "airflow_provider_infinityblue.operators.batch",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "InfinityBlue",
                "python-modules": ["airflow_provider_infinityblue.sensors.infinityblue"],
            }
        ],
        "hooks": [
            {
                "integration-name": "InfinityBlue",
                "python-modules": ["airflow_provider_infinityblue.hooks.infinityblue"],
            }
        ],
        "triggers": [
            {
                "integration-name": "InfinityBlue",
                "python-modules": [
                    "airflow_provider_infinityblue.triggers.infinityblue",
                    "airflow_provider_infinityblue.triggers.batch",
                ],
            }
        ],
        "extra-links": ["airflow_provider_infinityblue.links.infinityblue.InfinityBlueVideoLink"],
        "connection-types": [
            {
                "connection-type": "infinityblue",
                "hook-class-name": "airflow_provider_infinityblue.hooks.infinityblue.InfinityBlueHook",
                "hook-name": "InfinityBlue",
                "ui-field-behaviour": {
                    # The port stays visible: Airflow 3.3's row Test icon sends the stored port (0 when there is
                    # none) and refuses, as a changed endpoint, a test whose port differs from the stored one.
                    "hidden-fields": ["schema", "login"],
                    "relabeling": {"host": "Base URL", "password": "API Key", "port": "Port (optional)"},
                    "placeholders": {"host": DEFAULT_BASE_URL, "password": "sk-...", "port": "443"},
                },
                # Every extra is optional: empty means the default its description names, and is not saved.
                # A schema "default" would be filled into the form and written into every connection's extra.
                "conn-fields": {
                    "default_model": {
                        "label": "Default model",
                        "description": "The model the generate operators use when a task gives none; pin one per "
                        "environment. Empty: kling-v2-5-turbo.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a TCP connection to the API. Empty: 10.",
                        "schema": {"type": ["number", "null"], "minimum": 0.1},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds for a whole answer (headers and body) once a request is sent. "
                        "Empty: 60.",
                        "schema": {"type": ["number", "null"], "minimum": 0.1},
                    },
                    "max_attempts": {
                        "label": "Max attempts",
                        "description": "Attempts of one status request outside a wait (and of a submission, "
                        "when the API provably did not take it) before giving up. Waits look again until "
                        "their timeout instead. Empty: 5.",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "initial_backoff": {
                        "label": "Initial backoff (s)",
                        "description": "First delay between attempts; it doubles, with jitter, per attempt. Empty: 1.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "max_backoff": {
                        "label": "Max backoff (s)",
                        "description": "Upper bound of the delay between attempts. Empty: 30.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "max_retry_after": {
                        "label": "Max Retry-After (s)",
                        "description": "Outside a wait, a 429 answer asking to wait longer than this fails "
                        "instead of waiting; a wait honours any Retry-After up to its timeout. Empty: 300.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "max_image_mb": {
                        "label": "Max image size (MB)",
                        "description": "Largest local image file sent for image-to-video. Empty: 20.",
                        "schema": {"type": ["number", "null"], "minimum": 0.001},
                    },
                    "max_prompt_chars": {
                        "label": "Max prompt length (characters)",
                        "description": "Longest prompt sent; a longer one fails before anything is sent. Empty: 10000.",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "allowed_hosts": {
                        "label": "Allowed video hosts",
                        "description": "Hosts downloads may reach although their address is private, loopback or "
                        "link-local (the base URL's own origin always is): host names (cdn.internal, "
                        "*.internal.example), IP addresses or CIDR networks (10.20.0.0/16), each with an optional "
                        ":port; comma-separated or a JSON list. Empty: none.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "allow_private_addresses": {
                        "label": "Allow private addresses",
                        "description": "Let downloads connect to any address, private, loopback and link-local "
                        "ones included. Off, they reach only public addresses, the base URL's origin and the "
                        "allowed video hosts. Empty: off.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "proxy": {
                        "label": "Proxy URL",
                        "description": "http://[user:password@]host:port for the API and video downloads; 'direct': "
                        "no proxy at all. Empty: HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the environment.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ca_bundle": {
                        "label": "CA bundle path",
                        "description": "A PEM file (or directory) of the certificates to trust, e.g. a private CA "
                        "or a TLS-inspecting gateway's. Replaces the default trust, for the API and video "
                        "downloads. Empty: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, or the default bundle.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "tls_verification": {
                        "label": "TLS certificate checks",
                        "description": "'verify', or 'skip-insecure' to accept any certificate: anyone on the "
                        "network path can then read the API key. Logged as a warning. Empty: verify.",
                        "schema": {"type": ["string", "null"], "enum": ["verify", "skip-insecure", None]},
                    },
                    "max_connections_per_host": {
                        "label": "Max connections per host (triggerer)",
                        "description": "Open connections a triggerer's shared pool keeps to the API, for all its "
                        "triggers on this connection (about 300 KB each over TLS). Empty: 16.",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "max_requests_per_second": {
                        "label": "Max requests per second (triggerer)",
                        "description": "Status requests per second shared by all the triggers of a triggerer on "
                        "this connection; a 429's Retry-After holds them all. Empty: no cap.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
            }
        ],
    }
