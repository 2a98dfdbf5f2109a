"""The Hugging Face Hub, checked up front: a machine without it fails in seconds with the offline recipe named.

    from data_prep.hub import cached_or_reachable
    path_or_id = cached_or_reachable("openbmb/RLHF-V-Dataset", repo_type="dataset")
"""

from data_prep.errors import HubUnavailableError

OFFLINE_HINT = "For an offline run use the tiny recipe: python train.py --config recipes/tiny.yaml"


def cached_or_reachable(repo_id: str, repo_type: str) -> str:
    """A hub repo already in the local cache is used from there (its folder); otherwise the hub must answer."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        return snapshot_download(repo_id, repo_type=repo_type, local_files_only=True)
    except Exception:  # not cached: ask the hub below
        pass
    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10)
    except Exception as error:  # connection refused, DNS failure, offline mode, missing repo
        raise HubUnavailableError(
            f"Cannot get {repo_type} {repo_id!r} from the Hugging Face Hub ({type(error).__name__}: "
            f"{str(error)[:200]}). {OFFLINE_HINT}"
        ) from None
    return repo_id


def check_dataset_reachable(repo_id: str) -> None:
    """Fail fast, with the offline hint, when a hub data set cannot be fetched."""
    cached_or_reachable(repo_id, repo_type="dataset")
