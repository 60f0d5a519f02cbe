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
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "Base URL", "password": "API Key"},
                    "placeholders": {"host": DEFAULT_BASE_URL, "password": "sk-..."},
                },
                "conn-fields": {
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a TCP connection to the API.",
                        "schema": {"type": "number", "default": 10, "minimum": 0.1},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds for a whole answer (headers and body) once a request is sent.",
                        "schema": {"type": "number", "default": 60, "minimum": 0.1},
                    },
                    "max_attempts": {
                        "label": "Max attempts",
                        "description": "Attempts of one status request outside a wait (and of a submission, "
                        "when the API provably did not take it) before giving up. Waits look again until "
                        "their timeout instead.",
                        "schema": {"type": "integer", "default": 5, "minimum": 1},
                    },
                    "initial_backoff": {
                        "label": "Initial backoff (s)",
                        "description": "First delay between attempts; it doubles, with jitter, per attempt.",
                        "schema": {"type": "number", "default": 1, "minimum": 0},
                    },
                    "max_backoff": {
                        "label": "Max backoff (s)",
                        "description": "Upper bound of the delay between attempts.",
                        "schema": {"type": "number", "default": 30, "minimum": 0},
                    },
                    "max_retry_after": {
                        "label": "Max Retry-After (s)",
                        "description": "Outside a wait, a 429 answer asking to wait longer than this fails "
                        "instead of waiting; a wait honours any Retry-After up to its timeout.",
                        "schema": {"type": "number", "default": 300, "minimum": 0},
                    },
                    "max_image_mb": {
                        "label": "Max image size (MB)",
                        "description": "Largest local image file sent for image-to-video.",
                        "schema": {"type": "number", "default": 20, "minimum": 0.001},
                    },
                    "max_prompt_chars": {
                        "label": "Max prompt length (characters)",
                        "description": "Longest prompt sent; a longer one fails before anything is sent.",
                        "schema": {"type": "integer", "default": 10000, "minimum": 1},
                    },
                    "allowed_hosts": {
                        "label": "Allowed video hosts",
                        "description": "Hosts downloads may reach although their address is private, loopback or "
                        "link-local (the base URL's own origin always is): host names (cdn.internal, "
                        "*.internal.example), IP addresses or CIDR networks (10.20.0.0/16), each with an optional "
                        ":port; comma-separated or a JSON list.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "allow_private_addresses": {
                        "label": "Allow private addresses",
                        "description": "Let downloads connect to any address, private, loopback and link-local "
                        "ones included. Off, they reach only public addresses, the base URL's origin and the "
                        "allowed video hosts.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "proxy": {
                        "label": "Proxy URL",
                        "description": "http://[user:password@]host:port for the API and video downloads; empty: "
                        "HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the environment; 'direct': no proxy at all.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "ca_bundle": {
                        "label": "CA bundle path",
                        "description": "A PEM file (or directory) of the certificates to trust, e.g. a private CA "
                        "or a TLS-inspecting gateway's; empty: REQUESTS_CA_BUNDLE, SSL_CERT_FILE, or the default "
                        "bundle. Replaces the default trust, for the API and video downloads.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "tls_verification": {
                        "label": "TLS certificate checks",
                        "description": "'verify' (the default), or 'skip-insecure' to accept any certificate: "
                        "anyone on the network path can then read the API key. Logged as a warning.",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["verify", "skip-insecure", None],
                            "default": "verify",
                        },
                    },
                    "max_connections_per_host": {
                        "label": "Max connections per host (triggerer)",
                        "description": "Open connections a triggerer's shared pool keeps to the API, for all its "
                        "triggers on this connection (about 300 KB each over TLS).",
                        "schema": {"type": ["integer", "null"], "default": 16, "minimum": 1},
                    },
                    "max_requests_per_second": {
                        "label": "Max requests per second (triggerer)",
                        "description": "Status requests per second shared by all the triggers of a triggerer on "
                        "this connection; empty: no cap. A 429's Retry-After holds them all.",
                        "schema": {"type": ["number", "null"], "default": None, "minimum": 0},
                    },
                },
            }
        ],
    }
