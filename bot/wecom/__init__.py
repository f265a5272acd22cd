"""The WeCom edge: callback crypto and parsing (wechatpy), and the project's own async API client."""
