"""trackwrap.config: where profile and policy files are read (pyyaml lives only here)."""

from trackwrap.config._filesystem import RealFileSystem
from trackwrap.config._loaders import (
    default_profiles_dir,
    infer_server_name,
    load_policy,
    load_server_profiles,
)
from trackwrap.config._schema import Reader, dotted, type_name
from trackwrap.config._staged import StagedReader
from trackwrap.config._user import USER_KEYS, UserConfig
from trackwrap.config._yaml import YamlDocument, load_yaml, load_yaml_bytes

__all__ = [
    "USER_KEYS",
    "Reader",
    "RealFileSystem",
    "StagedReader",
    "UserConfig",
    "YamlDocument",
    "default_profiles_dir",
    "dotted",
    "infer_server_name",
    "load_policy",
    "load_server_profiles",
    "load_yaml",
    "load_yaml_bytes",
    "type_name",
]
