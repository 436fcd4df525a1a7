"""One Kedro pipeline per stage of MAPE-Unlearn."""
