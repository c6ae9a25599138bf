"""Reports from the application database: the agent dashboard («Дашборд агента. Возобновления») and the
journey funnel, each as a terminal table (rich) and as a static HTML page with an inline SVG chart."""
